import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { serviceUrl } from '../helpers/services.js';
import { outboxInspectorContract } from './outbox-inspect.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-inspect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pg = serviceUrl('FERRY_PG_URL');
const mysql = serviceUrl('FERRY_MYSQL_URL');

outboxInspectorContract('sqlite', () => `sqlite:${join(dir, 'app.db')}`);
outboxInspectorContract('postgres', pg === undefined ? undefined : () => pg);
outboxInspectorContract('mysql', mysql === undefined ? undefined : () => mysql);

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { sqlite } from '../../src/transports/sqlite/index.js';
import { deadLetterContract } from './dead-letters.js';
import { sqliteLogPublisher } from '../helpers/foreign.js';
import { transportContract } from './transport.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

transportContract('sqlite', {
  create: () => sqlite({ path: join(dir, 'log.db'), partitions: 4, sessionTimeoutMs: 1500 }),
  foreign: () => sqliteLogPublisher(join(dir, 'log.db'), 4),
});

deadLetterContract('sqlite', {
  create: () => sqlite({ path: join(dir, 'dead.db'), partitions: 4, sessionTimeoutMs: 1500 }),
});

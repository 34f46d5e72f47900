import { FerryError } from '../core/errors.js';
import type { SeekTarget } from '../transport/transport.js';

/** `earliest`, `latest`, an ISO time, or `partition:offset,...` as a seek target. */
export function parseSeekTarget(text: string): SeekTarget {
  if (text === 'earliest' || text === 'latest') return { position: text };
  if (/^\d+:\d+(,\d+:\d+)*$/.test(text)) {
    const offsets: Record<number, string> = {};
    for (const pair of text.split(',')) {
      const [partition, offset] = pair.split(':') as [string, string];
      offsets[Number(partition)] = offset;
    }
    return { offsets };
  }
  const timestamp = new Date(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(timestamp.getTime())) return { timestamp };
  throw new FerryError(
    'INVALID_ARGUMENT',
    `${JSON.stringify(text)} is not a position: use earliest, latest, an ISO time (2026-01-31T12:00:00Z) or partition:offset pairs (0:42,1:17)`,
  );
}

import { pino, type DestinationStream, type Logger as PinoLogger, type LoggerOptions } from 'pino';

/**
 * The logger ferry writes to: a pino logger. Pass your own to share its destination and
 * bindings; ferry logs audit lines at `info`, failures at `warn` and `error`.
 */
export type Logger = PinoLogger;

/** How {@link createLogger} makes ferry's logger: its level and where its lines go. */
export interface LogOptions {
  /**
   * pino level; default `FERRY_LOG_LEVEL`, else `info` with `FERRY_AUDIT` (audit lines are
   * `info`), else `warn`. `silent` mutes everything.
   */
  level?: string;
  /**
   * Where lines go; default stderr. A path writes to that file (appending), buffered: a line
   * is there within 100 ms, and on exit.
   */
  destination?: string | DestinationStream;
}

/** Where a URL starts: its scheme and `//`. */
const URL_START = /[a-z][a-z0-9+.-]*:\/\//gi;
/** Query parameters that carry a secret (`?password=...`, `&sasl_password=...`, `token=...`). */
const SECRET_PARAMETER =
  /([?&;](?:[\w.-]*pass(?:word)?|pwd|[\w.-]*secret|[\w.-]*token|api[_-]?key|access[_-]?key)=)[^&#\s]*/gi;

/**
 * Any password in text (URLs in messages, errors, logs) becomes `***`: the `user:password@`
 * of every URL and secret query parameters. A password typed without percent-encoding may
 * hold `@`, `/`, `:` or spaces, so the password runs to the last `@` before the line or the
 * next URL ends; text after a URL that holds an `@` is redacted too rather than risk a leak.
 */
export function redactSecrets(text: string): string {
  // Most lines hold neither a URL nor a query parameter: nothing to look for.
  if (!text.includes('://') && !text.includes('=')) return text;
  const starts = [...text.matchAll(URL_START)].map((match) => match.index);
  let out = '';
  let done = 0;
  starts.forEach((start, i) => {
    const authority = text.indexOf('//', start) + 2;
    const lineEnd = text.indexOf('\n', authority);
    const end = Math.min(starts[i + 1] ?? text.length, lineEnd < 0 ? text.length : lineEnd);
    const segment = text.slice(authority, end);
    const user = /^[^/:@\s]*:/.exec(segment);
    const at = segment.lastIndexOf('@');
    if (!user || at < user[0].length) return;
    out += `${text.slice(done, authority)}${user[0]}***`;
    done = authority + at;
  });
  return (out + text.slice(done)).replace(SECRET_PARAMETER, '$1***');
}

/** A URL fit for logs and errors: the password replaced by `***`. */
export function redactUrl(url: string | URL): string {
  return redactSecrets(String(url));
}

/** Whether `FERRY_AUDIT` asks for the per-message audit trail (`1`, `true`, `yes`, `on`). */
export function auditFromEnv(): boolean {
  return /^(1|true|yes|on)$/i.test(process.env.FERRY_AUDIT ?? '');
}

/**
 * ferry's logger: warnings and errors by default, and with `audit` on one structured line per
 * publish and per consume outcome. Logged errors (`err`) pass through {@link redactSecrets},
 * so connection passwords never reach the log; ferry's own messages and fields hold URLs only
 * already redacted (where secrets can appear: connection errors, startup lines), so ordinary
 * lines are not scanned one by one. A path destination is written asynchronously, in writes
 * of up to 4 KiB: a line reaches the file within 100 ms, and what is buffered is written out
 * when the process exits.
 */
export function createLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? process.env.FERRY_LOG_LEVEL ?? (auditFromEnv() ? 'info' : 'warn');
  const config: LoggerOptions = {
    level,
    base: { service: 'ferry' },
    formatters: { level: (label) => ({ level: label }) },
    serializers: {
      err: (error: unknown) =>
        error instanceof Error
          ? { type: error.name, message: redactSecrets(error.message) }
          : { message: redactSecrets(String(error)) },
    },
  };
  const destination =
    typeof options.destination === 'string'
      ? joinLines(
          pino.destination({
            dest: options.destination,
            append: true,
            mkdir: true,
            sync: false,
            // Lines go out in writes of 4 KiB rather than one each, and within 100 ms.
            minLength: BATCH_BYTES,
            periodicFlush: 100,
          }),
        )
      : (options.destination ?? pino.destination(2));
  const logger = pino(config, destination);
  // A destination that asks pino for each line's metadata (a multistream) only gets lines
  // through pino.
  if (!(destination as { [METADATA]?: boolean })[METADATA]) destinations.set(logger, destination);
  return logger;
}

const METADATA = Symbol.for('pino.metadata');

/** The destination of each logger {@link createLogger} made: its lines' format is ferry's. */
const destinations = new WeakMap<Logger, DestinationStream>();

/** The fields of an info line: flat, keyed by plain identifiers, in the order they are written. */
export type InfoFields = Readonly<Record<string, string | number | undefined>>;

/** Where per-message info lines (the audit trail) go: a logger's `info`, for flat fields. */
export interface InfoLines {
  /** Whether `info` lines are written now (the logger's level may change at any time). */
  isLevelEnabled(level: 'info'): boolean;
  /**
   * One line, unless `info` is off: the bound fields, then `fields` (those undefined left
   * out), then `msg`.
   */
  info(fields: InfoFields, msg: string): void;
}

/**
 * `logger.child(bindings)` for flat info lines. For a logger made by {@link createLogger},
 * they are written straight to its destination, as the same JSON pino would write (level,
 * time, bindings, fields, msg), without pino's generic serialisation: its lookups per field
 * cost an audited consumer a third of its throughput. Any other logger may have hooks,
 * serialisers, redaction or formatters of its own, so its child writes the lines.
 */
export function infoLines(logger: Logger, bindings: Readonly<Record<string, unknown>>): InfoLines {
  const destination = destinations.get(logger);
  if (!destination) return logger.child(bindings);
  // pino leaves undefined values out of bindings, as JSON.stringify does.
  const bound = JSON.stringify({ ...logger.bindings(), ...bindings }).slice(1, -1);
  const head = `{"level":"info","time":`;
  const middle = bound ? `,${bound}` : '';
  return {
    isLevelEnabled: (level) => logger.isLevelEnabled(level),
    info(fields, msg) {
      if (!logger.isLevelEnabled('info')) return;
      let line = `${head}${Date.now()}${middle}`;
      for (const key in fields) {
        const value = fields[key];
        if (value === undefined) continue;
        // As pino writes them: a number that is not finite is null.
        const json =
          typeof value === 'string' ? quote(value) : Number.isFinite(value) ? value : 'null';
        line += `,"${key}":${json}`;
      }
      destination.write(`${line},"msg":${quote(msg)}}\n`);
    },
  };
}

/**
 * `JSON.stringify(text)`, without its cost for text that needs no escapes (ids, keys,
 * offsets): a call of it costs about as much as checking 80 characters here.
 */
function quote(text: string): string {
  if (text.length > 80) return JSON.stringify(text);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    // Control characters, `"` and `\`, and UTF-16 surrogates (a lone one is escaped).
    if (code < 32 || code === 34 || code === 92 || (code >= 0xd800 && code <= 0xdfff)) {
      return JSON.stringify(text);
    }
  }
  return `"${text}"`;
}

const BATCH_BYTES = 4096;

type FileStream = ReturnType<typeof pino.destination>;

/**
 * Hands lines to `stream` joined, about `BATCH_BYTES` at a time. SonicBoom measures the byte
 * length of the text it holds on every write, so line by line a burst costs time growing with
 * what waits (a publish of 500 audited messages spent a quarter of its time there). Its
 * `write`, `flush` and `flushSync` are per-instance already; the lines held here go out
 * before each flush (the periodic one, and the one at exit) and before `end`.
 */
function joinLines(stream: FileStream): FileStream {
  const write = stream.write.bind(stream);
  const flush = stream.flush.bind(stream);
  const flushSync = stream.flushSync.bind(stream);
  const end = stream.end.bind(stream);
  let lines: string[] = [];
  let held = 0;
  const release = (): void => {
    if (lines.length === 0) return;
    const text = lines.join('');
    lines = [];
    held = 0;
    write(text);
  };
  stream.write = (line: string): boolean => {
    lines.push(line);
    held += line.length;
    if (held >= BATCH_BYTES) release();
    return true;
  };
  stream.flush = (done?: (error?: Error) => unknown): void => {
    release();
    flush(done);
  };
  stream.flushSync = (): void => {
    release();
    flushSync();
  };
  stream.end = (): void => {
    release();
    end();
  };
  return stream;
}

import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

export interface LogOptions {
  /** pino level; default `FERRY_LOG_LEVEL` or `warn` (audit lines are `info`). `silent` mutes everything. */
  level?: string;
  /** Where lines go; default stderr. A path writes to that file (appending). */
  destination?: string | DestinationStream;
}

/** Any `user:password@` in text (URLs in messages, errors) becomes `user:***@`. */
export function redactSecrets(text: string): string {
  return text.replace(/(\/\/[^/:@\s]*:)[^@/\s]*@/g, '$1***@');
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
 * publish and per consume outcome. Error messages
 * pass through {@link redactSecrets}, so connection passwords never reach the log.
 */
export function createLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? process.env.FERRY_LOG_LEVEL ?? 'warn';
  const config: LoggerOptions = {
    level,
    base: { service: 'ferry' },
    formatters: { level: (label) => ({ level: label }) },
    hooks: {
      logMethod(args, method) {
        const redacted = args.map((arg) => (typeof arg === 'string' ? redactSecrets(arg) : arg));
        method.apply(this, redacted as Parameters<typeof method>);
      },
    },
    serializers: {
      err: (error: unknown) =>
        error instanceof Error
          ? { type: error.name, message: redactSecrets(error.message) }
          : { message: redactSecrets(String(error)) },
    },
  };
  const destination =
    typeof options.destination === 'string'
      ? pino.destination({ dest: options.destination, append: true, mkdir: true, sync: false })
      : (options.destination ?? pino.destination(2));
  return pino(config, destination);
}

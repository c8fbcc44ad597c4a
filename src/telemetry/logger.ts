// Structured logs (pino) on stderr. Tokens and keys are never logged: callers pass reasons and
// IDs, and the redact list is a second line of defence for header objects.
import { pino, type Logger } from 'pino';

export type { Logger };

/** The levels `--log-level` and PORTCULLIS_LOG_LEVEL accept (pino's own, plus silent). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export class LogLevelError extends Error {
  override readonly name = 'LogLevelError';
  readonly level: string;
  constructor(level: string) {
    super(`unknown log level ${JSON.stringify(level)}: expected one of ${LOG_LEVELS.join(', ')}`);
    this.level = level;
  }
}

export function createLogger(level: string = process.env.PORTCULLIS_LOG_LEVEL ?? 'info'): Logger {
  // A bad level is a usage problem with a message naming the choices, never pino's raw throw.
  if (!isLogLevel(level)) throw new LogLevelError(level);
  return pino(
    {
      name: 'portcullis',
      level,
      base: undefined,
      // Like the audit log: an RFC 3339 `time` and a string `level`, readable without a decoder table.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['headers["x-jit-grant"]', 'headers["x-device-posture"]', 'headers.authorization', '*.token', 'token', 'key'], censor: '[redacted]' },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

// Structured logs (pino) on stderr. Tokens and keys are never logged: callers pass reasons and
// IDs, and the redact list is a second line of defence for header objects.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level = process.env.PORTCULLIS_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      name: 'portcullis',
      level,
      base: undefined,
      redact: { paths: ['headers["x-jit-grant"]', 'headers["x-device-posture"]', 'headers.authorization', '*.token', 'token', 'key'], censor: '[redacted]' },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

import pino from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logs on stderr; the data path logs only through a logger it is handed. */
export function createLogger(level: string = process.env.SIDEMIRROR_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'sidemirror', level }, pino.destination({ fd: 2, sync: false }));
}

/** A logger that drops everything, for tests and benches. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

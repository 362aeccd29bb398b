export * from './files.ts';
export * from './keys.ts';
export * from './logger.ts';
export * from './server.ts';
export * from './tls.ts';
export * from './db.ts';
export * from './migrate.ts';
export * from './operator.ts';

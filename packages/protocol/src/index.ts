export * from './card.ts';
export * from './crypto.ts';
export * from './errors.ts';
export * from './ids.ts';
export * from './limits.ts';
export * from './messages.ts';
export * from './money.ts';
export * from './secret.ts';

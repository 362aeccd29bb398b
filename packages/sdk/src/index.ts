export * from './http.ts';
export * from './wallet-client.ts';
export * from './merchant-client.ts';
export * from './authorization-verifier.ts';
export * from './trace-context.ts';
export * from './retry.ts';
export * from './wire.ts';
export * from './pager.ts';

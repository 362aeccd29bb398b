export * from './approval.ts';
export * from './credential-binding.ts';
export * from './pin-block.ts';

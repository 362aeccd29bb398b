export { startSystem, type KessaiSystem, type SystemOptions } from './system.ts';
export { demoIssuers } from './demo-data.ts';

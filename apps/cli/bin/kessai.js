#!/usr/bin/env node
// The `kessai` executable (`npx kessai …`): registers tsx's loader in this process, then runs the
// TypeScript entry point. Plain JavaScript so that node runs it without a build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');

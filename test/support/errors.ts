/** The error code a call failed with, for tests that assert refusals by code. */
import { KessaiError, type ErrorCode } from '@kessai/protocol';

export async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | 'no error'> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof KessaiError) return err.code;
    throw err;
  }
  return 'no error';
}

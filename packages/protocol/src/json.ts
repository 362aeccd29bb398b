/**
 * JSON as Kessai reads it from the wire: RFC 8259 text with unique member names (RFC 8259 §4 says
 * only "SHOULD"; I-JSON, RFC 7493 §2.3, says MUST) and at most jsonDepthMax levels of nesting.
 * `JSON.parse` silently keeps the last of two equal keys, so one body could mean one thing to a
 * proxy, a log reader or another implementation and another thing here: such a body is refused.
 */
import { limits } from './limits.ts';

export type JsonShapeProblem = 'duplicate_key' | 'too_deep';

/**
 * Scans JSON text for a member name repeated inside one object, or nesting past `depthMax`.
 * Linear in the text and iterative (no recursion), so any input is safe to scan; text that is not
 * JSON gives no meaningful answer, and the caller's JSON.parse refuses it anyway.
 */
export function jsonShapeProblem(text: string, depthMax: number = limits.jsonDepthMax): JsonShapeProblem | undefined {
  const open: Array<Set<string> | null> = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '{' || char === '[') {
      open.push(char === '{' ? new Set() : null);
      if (open.length > depthMax) return 'too_deep';
    } else if (char === '}' || char === ']') {
      open.pop();
    } else if (char === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      const keys = open.at(-1);
      if (!keys) continue;
      let next = i + 1;
      while (next < text.length && (text[next] === ' ' || text[next] === '\t' || text[next] === '\n' || text[next] === '\r')) next++;
      if (text[next] !== ':') continue;
      let name: string;
      try {
        // The escape-decoded name: "a" and "\u0061" are the same member.
        name = JSON.parse(text.slice(start, i + 1)) as string;
      } catch {
        return undefined;
      }
      if (keys.has(name)) return 'duplicate_key';
      keys.add(name);
    }
  }
  return undefined;
}

/** JSON.parse for protocol payloads (opened JWEs, verified JWSs): refuses what jsonShapeProblem finds. */
export function parseJson(text: string): unknown {
  const problem = jsonShapeProblem(text);
  if (problem) throw new SyntaxError(problem === 'duplicate_key' ? 'JSON text repeats a member name' : 'JSON text is nested too deeply');
  return JSON.parse(text) as unknown;
}

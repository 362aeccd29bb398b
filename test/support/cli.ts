/** The `kessai` command line inside a test: a program with some command groups registered, run on arguments, its stdout captured. */
import { Command } from 'commander';

export async function runKessai(register: (program: Command) => void, args: string[]): Promise<string> {
  const program = new Command('kessai').exitOverride();
  register(program);
  const written: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  return written.join('');
}

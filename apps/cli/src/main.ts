/**
 * `kessai`: the one command for everything a person does by hand. `kessai serve <role>` loads only
 * what serving a role needs (a role process starts sooner: restarts, rolling deploys); every other
 * command goes through commander (commands.ts).
 */
if (process.argv[2] === 'serve' && process.argv.length === 4 && !process.argv[3]!.startsWith('-')) {
  const { serveCommand } = await import('./serve/index.ts');
  await serveCommand(process.argv[3]!, process.env);
} else {
  await import('./commands.ts');
}

export {};

import type { Command } from './args.ts';
import { EXIT } from './args.ts';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Run a demo rotation end to end on this machine (local KMS server, S3, Postgres, 2 workers).',
  usage: 'rewrap demo [--items N] [--keep]',
  options: { items: { type: 'string' }, keep: { type: 'boolean' } },
  async run({ values }) {
    const { runDemo } = await import('../demo/demo.ts');
    return (await runDemo({ items: values.items ? Number(values.items) : undefined, keep: Boolean(values.keep), json: Boolean(values.json) })) ? EXIT.ok : EXIT.failed;
  },
};

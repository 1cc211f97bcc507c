/** `rewrap incident start`: a top-priority campaign away from a KEK suspected compromised. */
import { singleKekOf } from '../core/campaign-spec.ts';
import { CampaignConflictError, setCampaignState } from '../ledger/index.ts';
import { withLedger } from './with-ledger.ts';
import { checkInventorySources } from '../sources/s3-inventory-source.ts';
import { admitCampaign, loadSpecFile } from '../campaign/create.ts';
import { parseCampaignSpec } from '../campaign/spec.ts';
import { setKeyringState } from '../kek/keyring-file-edit.ts';
import { EXIT, UsageError, out, type Command } from './args.ts';

export const INCIDENT_PRIORITY = 1000;

const WARNING = (kek: string) =>
  `Note: rewrapping protects data only if the DEKs themselves did not leak. If ${kek} may have been used to ` +
  'unwrap DEKs (or the DEKs were exposed), the data must be re-encrypted under new DEKs, which rewrap does not do; ' +
  `"rewrap campaign report <id> --kind exposure" names every item that was under ${kek}.`;

export const incidentCommand: Command = {
  name: 'incident start',
  summary: 'Start an incident campaign: move everything off a suspected-compromised KEK, ahead of all routine work.',
  usage: `rewrap incident start --kek <id>[@version] --spec <file.json> [--to <id>[@version]] [--kms-rps N] [--decrypt-only] [--json]

  --kek <id>[@version]  the compromised KEK (overrides the spec's "from")
  --spec <file>         sources, provider and target as for "campaign create"
  --to <id>[@version]   the target KEK (overrides the spec's "to")
  --kms-rps N           KMS budget for the incident (its own, separate from routine campaigns')
  --decrypt-only        local keyring: mark the compromised version decrypt-only, so nothing new is
                        wrapped under it. KMS: rewrap cannot do this for you; see README "Incidents"

Routine campaigns yield their workers within seconds while the incident runs.
Exit codes: 0 started, 2 bad input, 3 refused (overlaps an active campaign: pause or cancel it first).`,
  options: { kek: { type: 'string' }, spec: { type: 'string' }, to: { type: 'string' }, 'kms-rps': { type: 'string' }, 'decrypt-only': { type: 'boolean' } },
  async run({ values }) {
    if (typeof values.kek !== 'string') throw new UsageError('incident start: --kek <id>[@version] is required');
    if (typeof values.spec !== 'string') throw new UsageError('incident start: --spec <file.json> is required');
    const base = await loadSpecFile(values.spec);
    const rps = values['kms-rps'] === undefined ? base.options.kmsRequestsPerSecond : Number(values['kms-rps']);
    if (!Number.isFinite(rps) || rps < 0) throw new UsageError('incident start: --kms-rps must be a non-negative number');
    const spec = parseCampaignSpec({
      ...base,
      name: base.name.startsWith('incident') ? base.name : `incident: ${base.name}`,
      kind: 'incident',
      keyMap: undefined, // an incident drains the one compromised KEK
      from: values.kek,
      to: typeof values.to === 'string' ? values.to : base.to,
      options: { ...base.options, kmsRequestsPerSecond: rps },
    });
    if (values['decrypt-only']) {
      const { from } = singleKekOf(spec, 'incident start');
      if (spec.provider.type !== 'local' || from.version === undefined) {
        throw new UsageError('incident start: --decrypt-only needs a local keyring provider and --kek <id>@<version>');
      }
      await setKeyringState(spec.provider.keyringFile, from.id, from.version, 'decrypt-only');
    }
    try {
      return await withLedger(async (res) => {
        await checkInventorySources(res.s3Client(), spec);
        const c = await admitCampaign(res.ledger, spec, INCIDENT_PRIORITY, res.config.ledgerForm);
        await setCampaignState(res.ledger, c.id, ['planning'], 'running');
        const kek = values.kek as string;
        out(Boolean(values.json), { id: c.id, state: 'running', kind: 'incident', warning: WARNING(kek) }, () => `incident campaign ${c.id} running: everything under ${kek} moves to ${values.to ?? JSON.stringify(base.to)} first.\n${WARNING(kek)}`);
        return EXIT.ok;
      });
    } catch (err) {
      if (err instanceof CampaignConflictError) {
        process.stderr.write(`refused: ${err.message}\nPause or cancel the overlapping campaign first (rewrap campaign cancel <id>), then start the incident.\n`);
        return EXIT.refused;
      }
      throw err;
    }
  },
};

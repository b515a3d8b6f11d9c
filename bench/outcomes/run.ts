// The outcomes benchmarks on their own (bench/outcomes/suite.ts has what each part measures):
//   node bench/outcomes/run.ts [--only analyse,query,alert] [--traces 20000] [--outcomes 1000000] [--requests 30] [--alert-runs 2]
// `npm run bench -- --only outcomes` runs the same as a suite and writes bench/results/outcomes.json.

import { parseArgs } from 'node:util';
import { runOutcomes } from './suite.ts';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'analyse,query,alert' },
    traces: { type: 'string', default: '20000' },
    outcomes: { type: 'string', default: '1000000' },
    requests: { type: 'string', default: '30' },
    'alert-runs': { type: 'string', default: '2' },
  },
});

await runOutcomes({
  parts: args.only.split(','),
  traces: Number(args.traces),
  outcomes: Number(args.outcomes),
  requests: Number(args.requests),
  alertRuns: Number(args['alert-runs']),
  say: (s) => void process.stdout.write(`${s}\n`),
});

// The outcomes benchmarks on their own (bench/outcomes/suite.ts has what each part measures):
//   node bench/outcomes/run.ts [--only analyse,query,alert] [--traces 20000] [--collector-spans 300000] [--compare-readers]
//                              [--profile analyser.cpuprofile] [--outcomes 1000000] [--requests 30] [--alert-runs 2]
// --collector-spans: spans sent through the collector first, so the analyser is compared with
// the collector's ingest rate of the same run (0: with the documented rate).
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
    'collector-spans': { type: 'string', default: '300000' },
    'compare-readers': { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});

await runOutcomes({
  parts: args.only.split(','),
  traces: Number(args.traces),
  outcomes: Number(args.outcomes),
  requests: Number(args.requests),
  alertRuns: Number(args['alert-runs']),
  collectorSpans: Number(args['collector-spans']),
  compareReaders: args['compare-readers'],
  ...(args.profile !== undefined ? { profile: args.profile } : {}),
  say: (s) => void process.stdout.write(`${s}\n`),
});

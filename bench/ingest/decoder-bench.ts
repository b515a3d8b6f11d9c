// Micro-benchmark of the collector's protobuf → rows path in one process, without gRPC or
// ClickHouse: the wire generator's requests through TraceDecoder and the service graph.
//
//   node bench/ingest/decoder-bench.ts [requests=300] [batch=4096]
//
// Prints spans per CPU-second of this process (GC threads included).

import { TraceDecoder } from '../../collector/otlp/decode-traces.ts';
import { DEFAULT_VIRTUAL_NODE_ATTRIBUTES, ServiceGraphProcessor } from '../../collector/servicegraph/processor.ts';
import { WireWorkload } from './wire-generator.ts';

const requests = Number(process.argv[2] ?? 300);
const batch = Number(process.argv[3] ?? 4096);
const work = new WireWorkload(0);
const bodies = Array.from({ length: 20 }, () => work.request(batch).body);
const decoder = new TraceDecoder({ virtualNodeAttributes: DEFAULT_VIRTUAL_NODE_ATTRIBUTES });
const graph = new ServiceGraphProcessor(() => true, {});
// Warm-up, then the measured loop; a window of rows stays alive as the pipeline's queue would.
for (let i = 0; i < 20; i++) graph.observeHalves(decoder.decode(bodies[i]!).halves);
let window: unknown[] = [];
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < requests; i++) {
  const d = decoder.decode(bodies[i % bodies.length]!);
  graph.observeHalves(d.halves);
  window.push(d.rows);
  if (window.length > 25) window = window.slice(1);
}
const cpu = process.cpuUsage(cpu0);
const spans = requests * batch;
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
process.stdout.write(
  `${spans} spans: ${(performance.now() - t0).toFixed(0)} ms wall, ${cpuSeconds.toFixed(2)} CPU-s, ${Math.round(spans / cpuSeconds)} spans per CPU-second, ${((cpuSeconds / spans) * 1e6).toFixed(2)} µs per span\n`,
);
graph.shutdown();

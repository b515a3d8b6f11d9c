// The flags of `npm run bench` (each with a TRACEMESH_BENCH_* environment twin).

import type { FlagSpec } from '../common/flags.ts';


export const BENCH_FLAGS = [
  { name: 'only', kind: 'list', default: 'dataplane,ingest,query,outcomes', env: 'TRACEMESH_BENCH_ONLY', description: 'Suites to run, comma-separated: dataplane, ingest, query, outcomes.' },
  { name: 'out', kind: 'string', default: 'bench/results', env: 'TRACEMESH_BENCH_OUT', description: 'Directory for <suite>.json and SUMMARY.md.' },
  { name: 'install', kind: 'bool', default: 'false', env: 'TRACEMESH_BENCH_INSTALL', description: 'Install missing Debian tools (wrk, nghttp2-client, haproxy, openssl, clickhouse-server) with apt-get; root on Debian only. Without it nothing is installed and the measurements that need a missing tool are skipped.' },
  { name: 'keep', kind: 'bool', default: 'false', env: 'TRACEMESH_BENCH_KEEP', description: 'Keep the run directory (configs, certificates, process logs) instead of deleting it after a successful run.' },
  // data plane
  { name: 'duration', kind: 'duration', default: '10s', env: 'TRACEMESH_BENCH_DURATION', description: 'Measured time of each data plane load (wrk, open loop, h2load, gRPC).' },
  { name: 'warmup', kind: 'duration', default: '2s', env: 'TRACEMESH_BENCH_WARMUP', description: 'Unmeasured warm-up before each data plane load.' },
  { name: 'rate', kind: 'int', default: '1000', env: 'TRACEMESH_BENCH_RATE', description: 'Open-loop request rate (req/s) for the latency and CPU figures.' },
  { name: 'connections', kind: 'int', default: '32', env: 'TRACEMESH_BENCH_CONNECTIONS', description: 'wrk connections for the max-throughput figure.' },
  { name: 'wrk-threads', kind: 'int', default: '1', env: 'TRACEMESH_BENCH_WRK_THREADS', description: 'wrk threads.' },
  { name: 'open-loop-connections', kind: 'int', default: '16', env: 'TRACEMESH_BENCH_OPEN_LOOP_CONNECTIONS', description: 'Keep-alive connections of the open-loop generator.' },
  { name: 'h2-connections', kind: 'int', default: '4', env: 'TRACEMESH_BENCH_H2_CONNECTIONS', description: 'h2load connections.' },
  { name: 'h2-streams', kind: 'int', default: '16', env: 'TRACEMESH_BENCH_H2_STREAMS', description: 'h2load concurrent streams per connection.' },
  { name: 'grpc-concurrency', kind: 'int', default: '16', env: 'TRACEMESH_BENCH_GRPC_CONCURRENCY', description: 'gRPC unary calls kept in flight.' },
  { name: 'routes', kind: 'list', default: 'direct,tracemesh,tracemesh-plaintext,tracemesh-notrace,tracemesh-lowmem,haproxy', env: 'TRACEMESH_BENCH_ROUTES', description: 'Data plane routes to measure: direct, tracemesh (mTLS, traced), tracemesh-plaintext (traced, no mTLS), tracemesh-notrace (mTLS, sampling 0), tracemesh-lowmem (mTLS, traced, sidecars under node --max-semi-space-size=1 --max-old-space-size=96), haproxy, node-relay (the Node.js floor: an mTLS byte relay pair, no HTTP, no telemetry; not in the default list).' },
  { name: 'tls', kind: 'string', default: 'auto', env: 'TRACEMESH_BENCH_TLS', description: 'mTLS between the tracemesh sidecars: auto (on when the sidecar supports it), on (fail if it does not), off.' },
  { name: 'haproxy-threads', kind: 'int', default: '1', env: 'TRACEMESH_BENCH_HAPROXY_THREADS', description: 'nbthread of each haproxy process (1 = one core, like one Node event loop).' },
  { name: 'haproxy-hop', kind: 'string', default: 'h2', env: 'TRACEMESH_BENCH_HAPROXY_HOP', description: 'Protocol between the two haproxies for HTTP/1.1 traffic: h2 (multiplexed, like the mesh) or h1.' },
  { name: 'span-sink', kind: 'string', default: 'auto', env: 'TRACEMESH_BENCH_SPAN_SINK', description: 'Where the traced sidecars export spans: auto (collector → ClickHouse when collector/main.ts exists, else the bench OTLP sink), collector, or sink.' },
  { name: 'sidecar-access-log', kind: 'string', default: 'off', env: 'TRACEMESH_BENCH_SIDECAR_ACCESS_LOG', description: 'The sidecars\' JSON access-log line on stdout: off or stdout. OTLP access-log records are exported either way (with the spans).' },
  { name: 'baseline', kind: 'string', default: '', env: 'TRACEMESH_BENCH_BASELINE', description: 'A second checkout of tracemesh (e.g. an older commit, `git archive <commit> | tar -x -C <dir>` with node_modules linked). Adds the route tracemesh-baseline: the traced mTLS pair run from that checkout, measured side by side with tracemesh in the same run (for before/after comparisons of a change).' },
  { name: 'profile', kind: 'bool', default: 'false', env: 'TRACEMESH_BENCH_PROFILE', description: 'Run every tracemesh sidecar under node --cpu-prof; after each route, print where its CPU time went (by area and top functions) and write <out>/profiles/<route>-<role>.txt next to the .cpuprofile files (open those in Chrome DevTools or speedscope). Profiling slows the sidecars: figures of a profiled run are not comparable.' },
  // ingest
  { name: 'ingest-spans', kind: 'int', default: '1000000', env: 'TRACEMESH_BENCH_INGEST_SPANS', description: 'Spans the ingest suite sends in total (split across the generator processes).' },
  { name: 'ingest-processes', kind: 'int', default: '2', env: 'TRACEMESH_BENCH_INGEST_PROCESSES', description: 'Generator processes (each an OpenTelemetry SDK with the OTLP gRPC exporter).' },
  { name: 'ingest-batch', kind: 'int', default: '4096', env: 'TRACEMESH_BENCH_INGEST_BATCH', description: 'BatchSpanProcessor maxExportBatchSize in the generators.' },
  { name: 'ingest-timeout', kind: 'duration', default: '300s', env: 'TRACEMESH_BENCH_INGEST_TIMEOUT', description: 'Deadline for all ingest spans to be counted in ClickHouse.' },
  // query
  { name: 'query-spans', kind: 'int', default: '10000000', env: 'TRACEMESH_BENCH_QUERY_SPANS', description: 'Spans loaded into ClickHouse for the query suite (use e.g. 200000 for a quick run).' },
  { name: 'spans', kind: 'string', default: '', env: 'TRACEMESH_BENCH_SPANS', description: 'Alias of --query-spans.' },
  { name: 'query-requests', kind: 'int', default: '300', env: 'TRACEMESH_BENCH_QUERY_REQUESTS', description: 'Sequential requests per query kind (trace by id, search, path).' },
  { name: 'query-time-budget', kind: 'duration', default: '60s', env: 'TRACEMESH_BENCH_QUERY_TIME_BUDGET', description: 'Longest time spent on each query kind; the series stops early (and says so) when it runs out.' },
  // outcomes (bench/outcomes/suite.ts)
  { name: 'outcomes-parts', kind: 'list', default: 'analyse,query,alert', env: 'TRACEMESH_BENCH_OUTCOMES_PARTS', description: 'Parts of the outcomes suite: analyse (analyser throughput), query (failing-path API latency), alert (failure-to-alert time).' },
  { name: 'outcomes-traces', kind: 'int', default: '20000', env: 'TRACEMESH_BENCH_OUTCOMES_TRACES', description: 'Traces the outcomes suite analyses (about 10 spans each).' },
  { name: 'outcomes-rows', kind: 'int', default: '1000000', env: 'TRACEMESH_BENCH_OUTCOMES_ROWS', description: 'Outcome rows in the hour the failing-path queries read (1M = the traces of 10M spans).' },
  { name: 'outcomes-requests', kind: 'int', default: '30', env: 'TRACEMESH_BENCH_OUTCOMES_REQUESTS', description: 'Sequential requests per failing-path query kind.' },
  { name: 'outcomes-collector-spans', kind: 'int', default: '300000', env: 'TRACEMESH_BENCH_OUTCOMES_COLLECTOR_SPANS', description: "Spans sent through the collector before the analyser runs, so the analyser is compared with the collector's ingest rate of the same run (0: with the documented 70 000 spans/s)." },
  { name: 'outcomes-alert-runs', kind: 'int', default: '1', env: 'TRACEMESH_BENCH_OUTCOMES_ALERT_RUNS', description: 'Failure-to-alert runs (each about a minute).' },
] as const satisfies readonly FlagSpec[];

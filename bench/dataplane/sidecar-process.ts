// Starts one tracemesh sidecar from a JSON config (startSidecar's options) and reports its
// actual ports. The harness uses `node cli/tracemesh.ts sidecar …` when the CLI entry exists;
// this is the fallback that needs only sidecar/sidecar.ts:
//   node bench/dataplane/sidecar-process.ts '<SidecarOptions as JSON>'
//   → {"ready":true,"outboundPort":…,"inboundPort":…,"adminPort":…}
// SIGTERM closes it (drain, flush telemetry) and exits.

interface StartedSidecar {
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly adminPort: number;
  close(): Promise<void>;
}
type StartSidecar = (options: Record<string, unknown>) => Promise<StartedSidecar>;

if (import.meta.main) {
  const options = JSON.parse(process.argv[2] ?? process.env['TRACEMESH_BENCH_SIDECAR_CONFIG'] ?? '{}') as Record<string, unknown>;
  // Imported by URL at run time so this file type-checks whatever shape the sidecar module has.
  const mod = (await import(new URL('../../sidecar/sidecar.ts', import.meta.url).href)) as { startSidecar: StartSidecar };
  const sidecar = await mod.startSidecar(options);
  process.stdout.write(JSON.stringify({ ready: true, outboundPort: sidecar.outboundPort, inboundPort: sidecar.inboundPort, adminPort: sidecar.adminPort }) + '\n');
  const stop = (): void => {
    void sidecar.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

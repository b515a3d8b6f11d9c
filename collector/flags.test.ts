import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../common/errors.ts';
import { parseFlags } from '../common/flags.ts';
import { COLLECTOR_FLAGS, configFromFlags } from './flags.ts';

void describe('collector flags', () => {
  void it('default to the OpenTelemetry ports and the documented limits', () => {
    const config = configFromFlags(parseFlags(COLLECTOR_FLAGS, [], {}));
    assert.deepEqual(config, {
      host: '127.0.0.1',
      grpcPort: 4317,
      httpPort: 4318,
      adminPort: 13133,
      batchSize: 50_000,
      batchTimeoutMs: 1_000,
      queueSize: 200_000,
      maxBodyBytes: 16 * 1024 * 1024,
      writeConcurrency: 2,
      tailSampling: { ratio: 1, latencyThresholdMs: 2_000, waitMs: 5_000, maxDecisions: 200_000 },
      retryInitialMs: 100,
      retryMaxMs: 5_000,
      shutdownTimeoutMs: 30_000,
      servicegraph: { enabled: true, waitMs: 10_000, maxPending: 100_000, flushIntervalMs: 5_000 },
      admission: { maxInflightBytes: 64 * 1024 * 1024, maxConcurrentRequests: 256, maxRequestsPerConnection: 32, maxConnections: 1024, requestTimeoutMs: 30_000, minBodyRate: 16 * 1024 },
      attributeLimits: { maxAttributes: 128, maxResourceAttributes: 128, maxEventAttributes: 128, maxEvents: 128, maxLinks: 128, maxKeyBytes: 256, maxValueBytes: 16 * 1024 },
      processMetrics: true,
    });
  });

  void it('read environment twins, and command-line flags win', () => {
    const values = parseFlags(COLLECTOR_FLAGS, ['--batch-size', '500', '--disable-servicegraph'], {
      TRACEMESH_COLLECTOR_BATCH_SIZE: '9',
      TRACEMESH_COLLECTOR_BATCH_TIMEOUT: '250ms',
      TRACEMESH_CLICKHOUSE_URL: 'http://127.0.0.1:8123',
    });
    const config = configFromFlags(values);
    assert.equal(config.batchSize, 500);
    assert.equal(config.batchTimeoutMs, 250);
    assert.equal(config.servicegraph.enabled, false);
    assert.equal(values['clickhouse-url'], 'http://127.0.0.1:8123');
    assert.equal(values['clickhouse-database'], 'tracemesh');
  });

  void it('refuse values out of range, naming the flag', () => {
    assert.throws(() => configFromFlags(parseFlags(COLLECTOR_FLAGS, ['--grpc-port', '70000'], {})), (e: unknown) => e instanceof ConfigError && /--grpc-port must be a port/.test(e.message));
    assert.throws(() => configFromFlags(parseFlags(COLLECTOR_FLAGS, ['--queue-size', '0'], {})), /--queue-size must be at least 1/);
    assert.throws(() => parseFlags(COLLECTOR_FLAGS, ['--batch-timeout', 'soon'], {}), /--batch-timeout/);
    assert.throws(() => configFromFlags(parseFlags(COLLECTOR_FLAGS, ['--max-inflight-bytes', '1000'], {})), /--max-inflight-bytes \(1000\) must be at least --max-body-size/);
  });
});

// Local-mode route files: HTTPRoute, GRPCRoute, Gateway and FaultInjection resources read from
// YAML files or directories (multi-document YAML, `kind: List` too), validated, checked
// across documents (duplicates, dangling filter references), and watched for edits. Other
// kinds are skipped, so routes and policies may share a directory.

import { parseAllDocuments } from 'yaml';
import { ConfigError } from '../errors.ts';
import { silentLogger, type Logger } from '../logger.ts';
import { WatchedSource } from '../watched-source.ts';
import { readYamlSources, yamlSignature, yamlWatchTargets, type FileSource } from '../yaml-files.ts';
import {
  describeDocument,
  faultInjectionSchema,
  fieldPath,
  GATEWAY_API_GROUP,
  gatewaySchema,
  grpcRouteSchema,
  httpRouteSchema,
  parseResource,
  resourceId,
  TRACEMESH_API_GROUP,
  type FaultInjection,
  type Gateway,
  type GrpcRoute,
  type HttpRoute,
} from './resources.ts';
import { EMPTY_ROUTE_SET, RouteTable, type RouteSet } from './table.ts';

/** Everything the route files hold. */
export interface RouteFiles extends RouteSet {
  readonly gateways: readonly Gateway[];
}

export const EMPTY_ROUTE_FILES: RouteFiles = Object.freeze({ ...EMPTY_ROUTE_SET, gateways: [] });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Collector {
  readonly httpRoutes: HttpRoute[] = [];
  readonly grpcRoutes: GrpcRoute[] = [];
  readonly faultInjections: FaultInjection[] = [];
  readonly gateways: Gateway[] = [];
  /** `<kind> <namespace>/<name>` → where it was defined. */
  readonly where = new Map<string, string>();
  private readonly logger: Logger;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  add(doc: unknown, where: string, prefix: readonly PropertyKey[]): void {
    if (doc === null || doc === undefined) return;
    const at = prefix.length === 0 ? '' : `${fieldPath(prefix)}: `;
    if (!isObject(doc) || typeof doc['kind'] !== 'string' || typeof doc['apiVersion'] !== 'string') {
      throw new ConfigError(`${where}: ${at}expected a Kubernetes object with apiVersion and kind`);
    }
    const kind = doc['kind'];
    const apiVersion = doc['apiVersion'];
    if (kind === 'List' || (kind.endsWith('List') && 'items' in doc)) {
      const items = doc['items'];
      if (!Array.isArray(items)) throw new ConfigError(`${where}: ${fieldPath([...prefix, 'items'])}: expected array`);
      items.forEach((item, i) => this.add(item, where, [...prefix, 'items', i]));
      return;
    }
    const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
    if (group === GATEWAY_API_GROUP && kind === 'HTTPRoute') this.record(parseResource(httpRouteSchema, doc, where, prefix), where);
    else if (group === GATEWAY_API_GROUP && kind === 'GRPCRoute') this.record(parseResource(grpcRouteSchema, doc, where, prefix), where);
    else if (group === GATEWAY_API_GROUP && kind === 'Gateway') this.record(parseResource(gatewaySchema, doc, where, prefix), where);
    else if (group === TRACEMESH_API_GROUP && kind === 'FaultInjection') this.record(parseResource(faultInjectionSchema, doc, where, prefix), where);
    else if (group === GATEWAY_API_GROUP) {
      // TCPRoute, TLSRoute, ReferenceGrant, GatewayClass…: related, and a reader may expect them to work.
      this.logger.warn(`${kind} is not supported by tracemesh; ignoring it`, { where, kind, apiVersion });
    } else this.logger.debug('ignoring a resource that is not a route', { where, kind, apiVersion });
  }

  private record(r: HttpRoute | GrpcRoute | Gateway | FaultInjection, where: string): void {
    const key = `${r.kind} ${resourceId(r)}`;
    const earlier = this.where.get(key);
    if (earlier !== undefined) throw new ConfigError(`${where}: ${key} is already defined in ${earlier}; each namespace/name may appear once`);
    this.where.set(key, where);
    if (r.kind === 'HTTPRoute') this.httpRoutes.push(r);
    else if (r.kind === 'GRPCRoute') this.grpcRoutes.push(r);
    else if (r.kind === 'Gateway') this.gateways.push(r);
    else this.faultInjections.push(r);
  }

  /** Checks that need every document: filter references resolve. */
  crossCheck(): void {
    const faults = new Set(this.faultInjections.map(resourceId));
    for (const route of [...this.httpRoutes, ...this.grpcRoutes]) {
      const key = `${route.kind} ${resourceId(route)}`;
      route.spec.rules.forEach((rule, i) => {
        (rule.filters ?? []).forEach((f, j) => {
          if (f.type !== 'ExtensionRef') return;
          const ref = f.extensionRef;
          const field = `spec.rules[${i}].filters[${j}].extensionRef`;
          if (ref.group !== TRACEMESH_API_GROUP || ref.kind !== 'FaultInjection') {
            throw new ConfigError(`${this.where.get(key) ?? '?'}: ${key}: ${field}: unknown extension ${ref.group}/${ref.kind}; tracemesh provides ${TRACEMESH_API_GROUP}/FaultInjection`);
          }
          if (!faults.has(`${route.metadata.namespace}/${ref.name}`)) {
            throw new ConfigError(
              `${this.where.get(key) ?? '?'}: ${key}: ${field}: FaultInjection ${route.metadata.namespace}/${ref.name} is not defined in the route files (it must be in the route's namespace)`,
            );
          }
        });
      });
    }
  }
}

export interface RouteLoadOptions {
  /** Told about documents of other kinds that are skipped. */
  readonly logger?: Logger;
}

/**
 * Parses route files already read into memory. Throws a ConfigError on the first invalid
 * document, naming file, document, kind, namespace/name, field and reason:
 * `routes/canary.yaml (document 2): HTTPRoute shop/canary: spec.rules[0].backendRefs[1].weight: must be from 0 to 1000000`.
 */
export function parseRouteSources(sources: readonly FileSource[], options: RouteLoadOptions = {}): RouteFiles {
  const c = new Collector(options.logger ?? silentLogger);
  for (const { file, text } of sources) {
    parseAllDocuments(text).forEach((doc, i) => {
      const where = `${file} (document ${i + 1})`;
      const error = doc.errors[0];
      if (error !== undefined) throw new ConfigError(`${where}: invalid YAML: ${(error.message.split('\n')[0] ?? '').replace(/:$/, '')}`);
      const js: unknown = doc.toJS();
      try {
        c.add(js, where, []);
      } catch (err) {
        if (err instanceof ConfigError || !isObject(js)) throw err;
        throw new ConfigError(`${where}: ${describeDocument(js)}: ${(err as Error).message}`, { cause: err });
      }
    });
  }
  c.crossCheck();
  return { httpRoutes: c.httpRoutes, grpcRoutes: c.grpcRoutes, faultInjections: c.faultInjections, gateways: c.gateways };
}

/** Parses the text of one file; see parseRouteSources. */
export function parseRouteYaml(text: string, file: string, options: RouteLoadOptions = {}): RouteFiles {
  return parseRouteSources([{ file, text }], options);
}

/** Reads and validates route files and directories. Throws a ConfigError naming the problem. */
export async function loadRoutes(paths: string | readonly string[], options: RouteLoadOptions = {}): Promise<RouteFiles> {
  return parseRouteSources(await readYamlSources(paths, 'route'), options);
}

/** The files and the table compiled from them, swapped together. */
export interface LoadedRoutes {
  readonly files: RouteFiles;
  readonly table: RouteTable;
}

export function compileRouteFiles(files: RouteFiles): LoadedRoutes {
  return { files, table: RouteTable.compile(files) };
}

export interface RouteWatchOptions {
  readonly logger: Logger;
  /** Quiet period after the last change event. Default 50 ms. */
  readonly debounceMs?: number;
  /** Told about each edit that is refused; the last good table stays in force. */
  readonly onError?: (err: ConfigError) => void;
}

/** Opens a watched set of route files; an invalid edit is refused (onError) and the last good table stays. */
export async function watchRoutes(paths: string | readonly string[], options: RouteWatchOptions): Promise<WatchedSource<LoadedRoutes>> {
  const list = typeof paths === 'string' ? [paths] : [...paths];
  const { logger, onError } = options;
  const source: WatchedSource<LoadedRoutes> = await WatchedSource.open<FileSource[], LoadedRoutes>({
    what: 'route files',
    targets: () => yamlWatchTargets(list),
    read: () => readYamlSources(list, 'route'),
    signature: yamlSignature,
    parse: (sources) => compileRouteFiles(parseRouteSources(sources, { logger })),
    debounceMs: options.debounceMs ?? 50,
    logger,
    onReload: (result, err) => {
      if (result === 'ok') {
        const { files } = source.current();
        logger.info('routes reloaded', { httpRoutes: files.httpRoutes.length, grpcRoutes: files.grpcRoutes.length, faultInjections: files.faultInjections.length, gateways: files.gateways.length });
        return;
      }
      const error = err instanceof ConfigError ? err : new ConfigError(String(err), { cause: err });
      logger.warn('route files are unusable; keeping the previous routes', { err: error });
      try {
        onError?.(error);
      } catch (e) {
        logger.error('route onError callback failed', { err: e });
      }
    },
  });
  return source;
}

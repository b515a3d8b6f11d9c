// The smallest `Reflect` metadata shim that @peculiar/x509 (through tsyringe) needs at load
// time. Replace with the `reflect-metadata` package once it is a dependency.

type MetadataMap = Map<unknown, unknown>;
const store = new WeakMap<object, Map<string | symbol | undefined, MetadataMap>>();

function own(target: object, property: string | symbol | undefined, create: boolean): MetadataMap | undefined {
  let byProperty = store.get(target);
  if (!byProperty) {
    if (!create) return undefined;
    byProperty = new Map();
    store.set(target, byProperty);
  }
  let map = byProperty.get(property);
  if (!map && create) {
    map = new Map();
    byProperty.set(property, map);
  }
  return map;
}

interface ReflectMetadataApi {
  defineMetadata(key: unknown, value: unknown, target: object, property?: string | symbol): void;
  getOwnMetadata(key: unknown, target: object, property?: string | symbol): unknown;
  getMetadata(key: unknown, target: object, property?: string | symbol): unknown;
  hasOwnMetadata(key: unknown, target: object, property?: string | symbol): boolean;
  hasMetadata(key: unknown, target: object, property?: string | symbol): boolean;
  metadata(key: unknown, value: unknown): (target: object, property?: string | symbol) => void;
}

const api: ReflectMetadataApi = {
  defineMetadata(key, value, target, property) {
    own(target, property, true)?.set(key, value);
  },
  getOwnMetadata(key, target, property) {
    return own(target, property, false)?.get(key);
  },
  getMetadata(key, target, property) {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
      const map = own(t, property, false);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  },
  hasOwnMetadata(key, target, property) {
    return own(target, property, false)?.has(key) ?? false;
  },
  hasMetadata(key, target, property) {
    return api.getMetadata(key, target, property) !== undefined;
  },
  metadata(key, value) {
    return (target, property) => api.defineMetadata(key, value, target, property);
  },
};

const reflect = Reflect as unknown as Partial<ReflectMetadataApi>;
if (typeof reflect.getMetadata !== 'function') {
  for (const [name, fn] of Object.entries(api)) {
    Object.defineProperty(Reflect, name, { value: fn, writable: true, configurable: true });
  }
}

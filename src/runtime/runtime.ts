import type { FractionalPercent, RuntimeLayerConfig } from '../config/model';
import { DEFAULT_DISK_LAYER_LIMITS, type DiskLayerLimits, DiskLayerSource } from './disk-layer';

/** Read side of runtime: what the data path sees. */
export interface Runtime {
  /**
   * Envoy's featureEnabled(key, default, random): the fraction comes from the runtime value of
   * `key` when it holds one, else from `defaultValue`; enabled when `random % denominator <
   * numerator`.
   */
  featureEnabled(key: string, defaultValue: FractionalPercent, random: number): boolean;
  get(key: string): string | undefined;
}

export interface RuntimeEntry {
  readonly key: string;
  /** The key's value in each layer, lowest first ('' where a layer does not set it), as Envoy's /runtime. */
  readonly layerValues: readonly string[];
  readonly adminValue: string | undefined;
  readonly finalValue: string;
}

/** Thrown by modify() when the bootstrap's layered_runtime has no admin layer (Envoy answers 503). */
export class NoAdminLayerError extends Error {
  constructor() {
    super('No admin layer specified');
  }
}

export interface LayeredRuntimeOptions {
  /** How often a disk layer's symlink root is checked for a swap. */
  readonly diskPollMs?: number;
  readonly diskLimits?: DiskLayerLimits;
  /** A disk layer's unreadable or over-limit files, by path. */
  readonly onDiskErrors?: (layer: string, errors: readonly string[]) => void;
  readonly onDiskReload?: (layer: string, keys: number) => void;
}

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/**
 * Envoy's layered runtime: the bootstrap's layers in order, later ones overriding earlier ones;
 * the admin layer, where the bootstrap places it, holds what /runtime_modify writes.
 */
export class LayeredRuntime implements Runtime {
  #layers: readonly RuntimeLayerConfig[] = [];
  readonly #adminLayer = new Map<string, string>();
  #disk = new Map<string, DiskLayerSource>();

  constructor(
    layers: readonly RuntimeLayerConfig[] = [{ name: 'admin', kind: 'admin' }],
    private readonly options: LayeredRuntimeOptions = {},
  ) {
    this.setLayers(layers);
  }

  /** A reload replaces the static and disk layers (disk ones read afresh); admin overrides stay, as they would in a running Envoy. */
  setLayers(layers: readonly RuntimeLayerConfig[]): void {
    const disk = new Map<string, DiskLayerSource>();
    for (const l of layers) {
      if (l.kind !== 'disk') continue;
      disk.set(l.name, new DiskLayerSource(l, {
        pollMs: this.options.diskPollMs ?? 1000,
        limits: this.options.diskLimits ?? DEFAULT_DISK_LAYER_LIMITS,
        onErrors: this.options.onDiskErrors ?? (() => undefined),
        onReload: this.options.onDiskReload ?? (() => undefined),
      }));
    }
    for (const d of this.#disk.values()) d.close();
    this.#disk = disk;
    this.#layers = layers;
  }

  /** Stops watching disk layers. */
  close(): void {
    for (const d of this.#disk.values()) d.close();
    this.#disk.clear();
  }

  get hasAdminLayer(): boolean {
    return this.#layers.some((l) => l.kind === 'admin');
  }

  /** An empty value removes the admin override, as Envoy's runtime_modify does. */
  modify(key: string, value: string): void {
    if (!this.hasAdminLayer) throw new NoAdminLayerError();
    if (value === '') this.#adminLayer.delete(key);
    else this.#adminLayer.set(key, value);
  }

  get(key: string): string | undefined {
    for (let i = this.#layers.length - 1; i >= 0; i--) {
      const v = this.#valueIn(this.#layers[i]!, key);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  #valueIn(layer: RuntimeLayerConfig, key: string): string | undefined {
    if (layer.kind === 'admin') return this.#adminLayer.get(key);
    if (layer.kind === 'disk') return this.#disk.get(layer.name)?.values.get(key);
    return layer.values.get(key);
  }

  // implements Runtime
  featureEnabled(key: string, defaultValue: FractionalPercent, random: number): boolean {
    let fraction = defaultValue;
    const raw = key ? this.get(key) : undefined;
    if (raw !== undefined && /^\d+$/.test(raw)) {
      const percent = Number(raw);
      // A bare integer is a percentage, whatever the default's denominator (Envoy's legacy rule).
      if (percent > 100) return true;
      fraction = { numerator: percent, denominator: 100 };
    } else if (raw !== undefined && raw.startsWith('{')) {
      fraction = parseFraction(raw) ?? defaultValue;
    }
    return random % fraction.denominator < Math.min(fraction.numerator, fraction.denominator);
  }

  /** Layer names, lowest first, for the admin /runtime page. */
  layerNames(): string[] {
    return this.#layers.map((l) => l.name);
  }

  /** Every key with its value in each layer, for the admin /runtime page. */
  entries(): RuntimeEntry[] {
    const keys = new Set<string>(this.#adminLayer.keys());
    for (const l of this.#layers) if (l.kind === 'static') for (const k of l.values.keys()) keys.add(k);
    for (const d of this.#disk.values()) for (const k of d.values.keys()) keys.add(k);
    return [...keys].sort().map((key) => ({
      key,
      layerValues: this.#layers.map((l) => this.#valueIn(l, key) ?? ''),
      adminValue: this.hasAdminLayer ? this.#adminLayer.get(key) : undefined,
      finalValue: this.get(key) ?? '',
    }));
  }
}

/** A FractionalPercent object from a static layer (`{"numerator":5,"denominator":"TEN_THOUSAND"}`). */
function parseFraction(raw: string): FractionalPercent | null {
  try {
    const v = JSON.parse(raw) as { numerator?: unknown; denominator?: unknown };
    const denominator = DENOMINATORS[String(v.denominator ?? 'HUNDRED')];
    const numerator = Number(v.numerator ?? 0);
    return denominator && Number.isInteger(numerator) ? { numerator, denominator } : null;
  } catch {
    return null;
  }
}

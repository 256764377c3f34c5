import type { FractionalPercent } from '../config/model';

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
  readonly staticValue: string | undefined;
  readonly adminValue: string | undefined;
  readonly finalValue: string;
}

/** Two layers, like Envoy's: the bootstrap's static layer below an admin layer that /runtime_modify writes. */
export class LayeredRuntime implements Runtime {
  #staticLayer: ReadonlyMap<string, string>;
  readonly #adminLayer = new Map<string, string>();

  constructor(staticLayer: ReadonlyMap<string, string> = new Map()) {
    this.#staticLayer = staticLayer;
  }

  setStaticLayer(layer: ReadonlyMap<string, string>): void {
    this.#staticLayer = layer;
  }

  /** An empty value removes the admin override, as Envoy's runtime_modify does. */
  modify(key: string, value: string): void {
    if (value === '') this.#adminLayer.delete(key);
    else this.#adminLayer.set(key, value);
  }

  get(key: string): string | undefined {
    return this.#adminLayer.get(key) ?? this.#staticLayer.get(key);
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
    }
    return random % fraction.denominator < fraction.numerator;
  }

  /** Every key with its layered values, for the admin /runtime page. */
  entries(): RuntimeEntry[] {
    const keys = new Set([...this.#staticLayer.keys(), ...this.#adminLayer.keys()]);
    return [...keys].sort().map((key) => ({
      key,
      staticValue: this.#staticLayer.get(key),
      adminValue: this.#adminLayer.get(key),
      finalValue: this.get(key) ?? '',
    }));
  }
}

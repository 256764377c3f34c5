// What the supervisor and its workers say to each other over the cluster IPC channel.

/** An accepted xDS response, resources as base64 Any values. */
export interface XdsPush {
  readonly t: 'xds';
  readonly typeUrl: string;
  readonly version: string;
  readonly resources: ReadonlyArray<{ readonly type_url: string; readonly value: string }>;
}

export type ToWorker =
  | { readonly t: 'bootstrap'; readonly text: string; readonly options: WorkerProxyOptions }
  | { readonly t: 'reload'; readonly text: string }
  | XdsPush
  | { readonly t: 'runtime'; readonly key: string; readonly value: string }
  | { readonly t: 'query'; readonly id: number; readonly what: 'summary' | 'metrics' | 'clusters_text' | 'clusters_json' | 'listeners' | 'reset_counters' }
  | { readonly t: 'stop' };

export type FromWorker =
  | { readonly t: 'ready' }
  | { readonly t: 'failed'; readonly message: string }
  | { readonly t: 'reply'; readonly id: number; readonly data: unknown };

export interface WorkerProxyOptions {
  readonly drainTimeoutMs: number;
  readonly shadowLimits: { maxInFlightPerCluster?: number; maxBufferedBodyBytes?: number; maxInFlightTotal?: number; maxTotalBufferedBodyBytes?: number };
  /** --hooks-dir, as given. */
  readonly hookDirs: readonly string[];
}

/** Cluster IPC messages of ours carry this marker, so prom-client's own messages pass by. */
export const MARK = '__sidemirror';

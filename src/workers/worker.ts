import { clustersJson, clustersText } from '../admin/clusters-text';
import { loadBootstrapText } from '../config/load';
import type { Logger } from '../log/logger';
import { Proxy } from '../proxy';
import { HookDirs } from '../shadow/hook-dirs';
import { DynamicConfig } from '../xds/dynamic-config';
import type { DynamicSource } from '../xds/xds-client';
import { IpcSubscriptions } from './ipc-subscriptions';
import { type FromWorker, MARK, type ToWorker } from './messages';


/**
 * A worker process: one Proxy sharing the listeners with its siblings (node:cluster), fed its
 * config by the supervisor. It never opens the admin port and never talks to the control plane.
 */
export function runWorker(logger: Logger): void {
  let proxy: Proxy | null = null;
  let feed: IpcSubscriptions | null = null;
  const send = (m: FromWorker): void => {
    process.send?.({ [MARK]: m });
  };
  const pending: ToWorker[] = [];

  const handle = async (m: ToWorker): Promise<void> => {
    switch (m.t) {
      case 'bootstrap': {
        const subs = new IpcSubscriptions();
        feed = subs;
        try {
          proxy = await Proxy.start({
            loaded: loadBootstrapText(m.text),
            logger,
            admin: false,
            drainTimeoutMs: m.options.drainTimeoutMs,
            shadowLimits: m.options.shadowLimits,
            hookDirs: new HookDirs(m.options.hookDirs),
            // Serve at once: the supervisor replays the accepted xDS state right after.
            initialFetchTimeoutMs: 0,
            dynamicSource: (_b, sink): DynamicSource => {
              const config = new DynamicConfig(subs, sink, logger, { attempt() {}, success() {}, rejected() {} });
              return { config, start() {}, close: () => config.close() };
            },
          });
          send({ t: 'ready' });
          for (const queued of pending.splice(0)) await handle(queued);
        } catch (err) {
          send({ t: 'failed', message: (err as Error).message });
        }
        return;
      }
      case 'stop':
        await proxy?.stop();
        process.exit(0);
        return;
      default:
        break;
    }
    if (!proxy) {
      pending.push(m);
      return;
    }
    switch (m.t) {
      case 'reload':
        await proxy.reload(loadBootstrapText(m.text)).catch((err: unknown) => logger.error({ err: (err as Error).message }, 'worker reload failed'));
        return;
      case 'xds':
        feed?.deliver(m.typeUrl, m.version, m.resources.map((r) => ({ type_url: r.type_url, value: Buffer.from(r.value, 'base64') })));
        return;
      case 'runtime':
        proxy.runtime.modify(m.key, m.value);
        return;
      case 'query':
        send({ t: 'reply', id: m.id, data: await answer(proxy, m.what) });
        return;
    }
  };

  process.on('message', (raw: unknown) => {
    const m = (raw as Record<string, unknown> | null)?.[MARK] as ToWorker | undefined;
    if (m) handle(m).catch((err: unknown) => logger.error({ err: (err as Error).message, message: m.t }, 'worker could not handle a supervisor message'));
  });
  // The supervisor decides when we stop; a Ctrl-C reaching the whole group must not cut requests short.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => void proxy?.stop().then(() => process.exit(0)));
  // The supervisor passes SIGUSR1 on (logrotate): each worker reopens its own access log files.
  process.on('SIGUSR1', () => proxy?.reopenAccessLogs());
}

async function answer(proxy: Proxy, what: Extract<ToWorker, { t: 'query' }>['what']): Promise<unknown> {
  switch (what) {
    case 'summary': {
      const total = (await proxy.stats.json()).stats
        .filter((s) => s.name.endsWith('.downstream_rq_total'))
        .reduce((sum, s) => sum + s.value, 0);
      return { pid: process.pid, downstream_rq_total: total };
    }
    case 'metrics':
      return proxy.stats.registry.getMetricsAsJSON();
    case 'clusters_text':
      return clustersText(proxy.clusters.all(), proxy.xds?.config.clusterVersion() ?? 'static');
    case 'clusters_json':
      return clustersJson(proxy.clusters.all());
    case 'listeners':
      return proxy.listeners.listeners();
    case 'reset_counters':
      proxy.stats.resetCounters();
      return true;
  }
}

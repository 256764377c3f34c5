import * as grpc from '@grpc/grpc-js';
import type { UpstreamTlsContext } from '../config/transport-model';
import { ClientTlsContext } from '../tls/client-context';
import type { SecretStore } from '../tls/secret-store';
import type { AdsChannelCredentials, AdsChannelSecurity } from './ads-stream';

// TLS to the management server: the ADS cluster's transport_socket, as grpc-js credentials with
// Envoy's rules, which are ClientTlsContext's (its file and secret handling included):
//   - no trusted_ca: the server's chain is not verified. grpc-js verifies by default (against
//     Node's roots when createSsl gets no CA); createFromSecureContext with our own context
//     (only trusted_ca in it, never the system roots) and `rejectUnauthorized` from the context
//     gives Envoy's meaning both ways;
//   - the host name is never compared with the certificate: match_typed_subject_alt_names only
//     (our checkServerIdentity; grpc-js calls it in place of Node's host check);
//   - SNI is `sni` when set (grpc.ssl_target_name_override). Without it grpc-js puts the target's
//     host in SNI, where Envoy sends none; Node sends none for an IP address target.
//   - ALPN is always h2: grpc-js offers nothing else, whatever alpn_protocols says.
// A rotated client certificate or CA file rebuilds the context; the next stream's channel takes
// it, and the stream already open keeps its connection.

export class AdsTlsCredentials implements AdsChannelCredentials {
  readonly #context: ClientTlsContext;
  readonly #sni: string | null;

  /** Throws when the context cannot be built (a file unreadable, a key that does not fit). */
  constructor(config: UpstreamTlsContext, store: SecretStore) {
    this.#context = new ClientTlsContext(config, { store });
    this.#sni = config.sni;
  }

  current(): AdsChannelSecurity | string {
    const o = this.#context.connectOptions({ alpn: ['h2'] });
    if (!o?.secureContext) return `the ADS cluster's TLS context is not ready: ${this.#context.error ?? 'no certificates'}`;
    const credentials = grpc.credentials.createFromSecureContext(o.secureContext, {
      rejectUnauthorized: o.rejectUnauthorized,
      ...(o.checkServerIdentity ? { checkServerIdentity: o.checkServerIdentity } : {}),
    });
    return { credentials, options: this.#sni !== null ? { 'grpc.ssl_target_name_override': this.#sni } : {} };
  }

  onUpdate(listener: () => void): () => void {
    return this.#context.onUpdate(listener);
  }

  close(): void {
    this.#context.close();
  }
}

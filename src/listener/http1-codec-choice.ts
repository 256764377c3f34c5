import { nativeHttp, processCodec } from '../util/native-http';
import { FastHttp1Codec } from './fast-h1/codec';
import { type CodecChain, type Http1Codec, NodeHttp1Codec } from './http1-codec';

/** The HTTP/1.1 codec this process runs (see util/native-http.ts): the fast one, or node:http. */
export function createHttp1Codec(current: () => CodecChain): Http1Codec {
  const native = processCodec().codec === 'fast' ? nativeHttp() : null;
  return native !== null ? new FastHttp1Codec(current, native) : new NodeHttp1Codec(current);
}

import { FerryError } from './errors.js';

/** Turns payloads into message bodies and back. Both directions throw on bad input. */
export interface Codec<T = unknown> {
  /** Sent as the `content-type` header so other clients know how to read the body. */
  readonly contentType: string;
  encode(payload: T): Buffer;
  decode(body: Buffer): T;
}

/** JSON in UTF-8: the default, readable by any client in any language. */
export const jsonCodec: Codec = {
  contentType: 'application/json',
  encode(payload) {
    let text: string | undefined;
    try {
      text = JSON.stringify(payload);
    } catch (cause) {
      throw new FerryError('CODEC_FAILED', 'Payload cannot be encoded as JSON', { cause });
    }
    if (text === undefined) {
      throw new FerryError('CODEC_FAILED', `Payload of type ${typeof payload} has no JSON form`);
    }
    return Buffer.from(text, 'utf8');
  },
  decode(body) {
    try {
      return JSON.parse(body.toString('utf8')) as unknown;
    } catch (cause) {
      throw new FerryError('CODEC_FAILED', 'Message body is not valid JSON', { cause });
    }
  },
};

/** Bytes as they are: for payloads that are already encoded (protobuf, images, ...). */
export const bytesCodec: Codec<Uint8Array> = {
  contentType: 'application/octet-stream',
  encode(payload) {
    if (!(payload instanceof Uint8Array)) {
      throw new FerryError('CODEC_FAILED', 'The bytes codec takes a Uint8Array or Buffer payload');
    }
    return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  },
  decode(body) {
    return body;
  },
};

import { createServer, connect, type Socket } from 'node:net';

/**
 * A loopback TCP proxy in front of a real service, to cut the service off and bring it back
 * without touching the service itself (others use it). While cut, it closes every open
 * connection and resets new ones at once, as a host whose service went down does.
 */
export interface TcpProxy {
  readonly port: number;
  /** Connections refused since the last `cut()`. */
  readonly refused: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function tcpProxy(host: string, port: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let up = true;
  let refused = 0;
  const server = createServer((client) => {
    if (!up) {
      refused++;
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(port, host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  const dropAll = (): void => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    port: address.port,
    get refused() {
      return refused;
    },
    cut() {
      up = false;
      refused = 0;
      dropAll();
    },
    restore() {
      up = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        dropAll();
        server.close(() => resolve());
      }),
  };
}

// A closed-loop HTTP/2 load generator (node:http2): S sessions, each keeping N streams in flight
// (each slot sends its next request as soon as its previous stream has closed), over TLS with the
// client certificate (h2load cannot present one) or h2c with prior knowledge. With `grpc`, every
// request is a gRPC unary call (POST, `application/grpc`, `te: trailers`, one framed message) and
// counts as answered only with grpc-status 0. Measures through measure.ts like loadgen.ts.
// Usage: node h2-loadgen.ts '{"port":8443,"tls":{"ca":…,"cert":…,"key":…},"path":"/open","sessions":32,"streams":4,"durationMs":5000}'
import { Recorder, type WindowOptions } from './measure.ts';
import { answerOk, call, GRPC_REQUEST, openSession, requestHeaders, type CallOptions, type SessionOptions } from './h2-call.ts';

interface Options extends WindowOptions, SessionOptions, CallOptions {
  sessions: number;
  /** Concurrent streams per session. */
  streams: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const headers = requestHeaders(options);
const body = options.grpc ? GRPC_REQUEST : undefined;
const grpc = options.grpc === true;
const recorder = new Recorder();

function worker(): Promise<void> {
  return new Promise((resolve) => {
    // One session at a time; if it fails while the window runs, a new one takes over its slots.
    const open = () => {
      const session = openSession(options);
      let inFlight = 0;
      const send = () => {
        if (!recorder.running || session.closed || session.destroyed) {
          if (inFlight === 0 && !session.closed) session.close();
          return;
        }
        inFlight++;
        const sentAt = process.hrtime.bigint();
        call(session, headers, body, (answer) => {
          inFlight--;
          if (answer.failed) recorder.error();
          else recorder.done(sentAt, answerOk(answer, grpc));
          send();
        });
      };
      // Node's HTTP/2 session sets TCP_NODELAY itself.
      session.on('connect', () => {
        for (let i = 0; i < options.streams; i++) send();
      });
      session.on('error', () => recorder.error());
      session.on('close', () => {
        if (recorder.running) setTimeout(open, 10);
        else resolve();
      });
    };
    open();
  });
}

const workers = Array.from({ length: options.sessions }, worker);
recorder.run(options, () => workers);

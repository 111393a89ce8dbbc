// A REP server on JeroMQ 0.3.6 (Debian's libjeromq-java): a pure-Java ZeroMQ that speaks
// ZMTP 2.0, so the tests can show that the gate's libzmq 4 REQ client works against a peer
// that is not libzmq 4. tests/support/zmq_peers.py compiles and runs it; see jeromq_rep_server().
//
// Usage: java -cp jeromq.jar:DIR JeroRep PORT REPLY [PUB_PORT]
//   PORT, PUB_PORT: 0 picks a free port. REPLY answers every request, as one frame.
// Output (stdout, UTF-8, one flushed line each):
//   bound port=<N> pub_port=<N, or 0 without PUB_PORT> at_ms=<epoch ms>   once, after binding
//   request <the request's last frame as UTF-8 text>                      per request
// It exits when stdin reaches end of file, so it cannot outlive a killed test run.

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import org.zeromq.ZMQ;

public final class JeroRep {
    private static final String HEARTBEAT = "{\"type\":\"heartbeat\"}";
    private static final long HEARTBEAT_MS = 100;

    private JeroRep() {
    }

    public static void main(String[] args) {
        int port = Integer.parseInt(args[0]);
        String reply = args[1];
        int pubPort = args.length > 2 ? Integer.parseInt(args[2]) : -1;
        // Explicit UTF-8, autoflush: the default charset of System.out follows the locale.
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true,
                StandardCharsets.UTF_8);
        exitWhenStdinCloses();

        ZMQ.Context ctx = ZMQ.context(1);
        ZMQ.Socket rep = ctx.socket(ZMQ.REP);
        rep.setLinger(0);
        int repBound = bind(rep, port);
        ZMQ.Socket pub = null;
        int pubBound = 0;
        if (pubPort >= 0) {
            pub = ctx.socket(ZMQ.PUB);
            pub.setLinger(0);
            pubBound = bind(pub, pubPort);
        }
        out.println("bound port=" + repBound + " pub_port=" + pubBound
                + " at_ms=" + System.currentTimeMillis());

        long nextBeat = System.currentTimeMillis() + HEARTBEAT_MS;
        while (true) {
            // Wait for a request no longer than until the next heartbeat is due.
            long wait = pub == null ? 1000 : Math.max(1, nextBeat - System.currentTimeMillis());
            rep.setReceiveTimeOut((int) wait);
            byte[] request = rep.recv(0);  // null when the timeout passed
            if (request != null) {
                while (rep.hasReceiveMore()) {  // several body frames: keep the last
                    request = rep.recv(0);
                }
                out.println("request " + new String(request, StandardCharsets.UTF_8));
                rep.send(reply.getBytes(StandardCharsets.UTF_8), 0);
            }
            if (pub != null && System.currentTimeMillis() >= nextBeat) {
                pub.send(HEARTBEAT.getBytes(StandardCharsets.UTF_8), 0);
                nextBeat += HEARTBEAT_MS;
            }
        }
    }

    // JeroMQ 0.3.6 reports port 0 for "tcp://127.0.0.1:0" (its LAST_ENDPOINT is not the
    // real port), so for 0 use bindToRandomPort, which tries 49152..65535 in turn and
    // returns the one it got. A busy explicit port throws ZMQException: exit non-zero.
    private static int bind(ZMQ.Socket sock, int port) {
        if (port == 0) {
            return sock.bindToRandomPort("tcp://127.0.0.1");
        }
        sock.bind("tcp://127.0.0.1:" + port);
        return port;
    }

    private static void exitWhenStdinCloses() {
        Thread watcher = new Thread(() -> {
            try {
                while (System.in.read() >= 0) {
                    // the test never writes; only end of file matters
                }
            } catch (IOException e) {
                // a broken stdin means the test is gone as well
            }
            Runtime.getRuntime().halt(0);
        });
        watcher.setDaemon(true);
        watcher.start();
    }
}

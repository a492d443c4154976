#!/usr/bin/env bash
# Produces the raw logs the samples in this folder were cut from, by running real programs on a
# Debian 12 machine (as root, in a scratch directory; nothing is read from /var/log). Needs:
# python3, openjdk-17, nginx-light, apache2, rsyslog, bsdutils (logger), strace, systemd
# (systemd-journald, systemd-cat, journalctl), postgresql 15 (initdb, pg_ctl, psql).
# Usage: bash tests/ingest/logsamples/make_samples.sh OUTDIR   (then cut snippets: see README.md)
# REPEAT=N repeats every request/message loop N times (bench/log_formats.py measures on REPEAT=200).
set -u
OUT=${1:?usage: make_samples.sh OUTDIR}
REPEAT=${REPEAT:-1}
export REPEAT
mkdir -p "$OUT" && cd "$OUT" || exit 1
HERE=$(pwd)

# --- Python logging: the default asctime (2015-07-29 17:41:44,747, log4j's ISO8601 layout) -----
python3 - <<'PY'
import logging, os
logging.basicConfig(filename="python_logging.log", level=logging.DEBUG,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("backup.worker")
for _ in range(int(os.environ["REPEAT"])):
    log.info("starting backup of /srv/data")
    log.debug("found 1284 files to copy")
    log.warning("disk usage at 91 percent on /srv")
    try:
        {}["missing"]
    except KeyError:
        log.exception("copy of manifest failed")
    log.error("backup finished with 1 error")
    log.info("next run scheduled")
PY
# ISO 8601 with T and a zone, from a datefmt
python3 - <<'PY'
import logging
logging.basicConfig(filename="python_iso_tz.log", level=logging.INFO,
                    format="%(asctime)s [%(levelname)s] %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")
import os
for i in range(5 * int(os.environ["REPEAT"])):
    logging.getLogger().info("heartbeat %d", i)
logging.getLogger().error("upstream timed out")
PY
# epoch seconds with a fraction, as %(created)f writes them
python3 - <<'PY'
import logging
logging.basicConfig(filename="python_epoch.log", level=logging.INFO, format="%(created)f %(levelname)s %(message)s")
import os
for i in range(5 * int(os.environ["REPEAT"])):
    logging.getLogger().info("sample %d taken", i)
logging.getLogger().warning("sensor 7 did not answer")
PY

# --- python3 -m http.server: its access lines ([03/Dec/2026 18:12:00], no zone) ---------------
mkdir -p www && echo hello > www/index.html
python3 -m http.server 8731 --bind 127.0.0.1 --directory www 2> http_server.log &
PID=$!; sleep 1
for r in $(seq $REPEAT); do for u in / /index.html /missing /index.html; do curl -s -o /dev/null "http://127.0.0.1:8731$u"; done; done
kill $PID; wait $PID 2>/dev/null

# --- nginx: access (combined, [10/Oct/2000:13:55:36 -0700]) and error (2024/03/14 02:17:00 [notice]) ---
mkdir -p nginx/logs nginx/html && echo hi > nginx/html/index.html
cat > nginx/nginx.conf <<EOF
pid $HERE/nginx/nginx.pid;
error_log $HERE/nginx/logs/error.log info;
events {}
http {
  access_log $HERE/nginx/logs/access.log combined;
  server { listen 127.0.0.1:8732; root $HERE/nginx/html; }
}
EOF
nginx -p "$HERE/nginx" -c "$HERE/nginx/nginx.conf"; sleep 1
for r in $(seq $REPEAT); do for u in / /nope /index.html /admin; do curl -s -o /dev/null -A "curl-sample" "http://127.0.0.1:8732$u"; done; done
nginx -p "$HERE/nginx" -c "$HERE/nginx/nginx.conf" -s quit; sleep 1

# --- Apache 2.4: error log ([Thu Dec 03 18:15:00.123456 2026] [core:error]) and access log ------
mkdir -p apache/logs apache/htdocs && echo hi > apache/htdocs/index.html
cat > apache/httpd.conf <<EOF
ServerRoot /usr/lib/apache2
LoadModule mpm_event_module modules/mod_mpm_event.so
LoadModule authz_core_module modules/mod_authz_core.so
LoadModule dir_module modules/mod_dir.so
Listen 127.0.0.1:8733
ServerName localhost
PidFile $HERE/apache/httpd.pid
ErrorLog $HERE/apache/logs/error_log
LogLevel info
DocumentRoot $HERE/apache/htdocs
LogFormat "%h %l %u %t \"%r\" %>s %b" common
CustomLog $HERE/apache/logs/access_log common
User nobody
Group nogroup
EOF
apache2 -f "$HERE/apache/httpd.conf" -k start; sleep 1
for r in $(seq $REPEAT); do for u in / /missing /index.html; do curl -s -o /dev/null "http://127.0.0.1:8733$u"; done; done
apache2 -f "$HERE/apache/httpd.conf" -k stop; sleep 1

# --- rsyslog: RFC 3164 (traditional file format) and RFC 5424 files, messages sent by logger ----
mkdir -p rsyslog
cat > rsyslog/rsyslog.conf <<EOF
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$HERE/rsyslog/log.sock" CreatePath="on")
global(workDirectory="$HERE/rsyslog")
*.* action(type="omfile" file="$HERE/rsyslog/messages" template="RSYSLOG_TraditionalFileFormat")
*.* action(type="omfile" file="$HERE/rsyslog/rfc5424.log" template="RSYSLOG_SyslogProtocol23Format")
EOF
rsyslogd -n -f "$HERE/rsyslog/rsyslog.conf" -i "$HERE/rsyslog/rsyslogd.pid" &
RS=$!; sleep 1
for r in $(seq $REPEAT); do
logger -u "$HERE/rsyslog/log.sock" -t backup -p user.info "backup of /srv started"
logger -u "$HERE/rsyslog/log.sock" -t backup -p user.warning "disk usage at 91% on /srv"
logger -u "$HERE/rsyslog/log.sock" -t sshd -p auth.info "Accepted publickey for deploy from 10.0.0.7 port 51234"
logger -u "$HERE/rsyslog/log.sock" -t backup -p user.err "backup verify failed: 3 files differ"
logger -u "$HERE/rsyslog/log.sock" -t cron -p cron.info "(root) CMD (run-parts /etc/cron.hourly)"
done
sleep 1; kill $RS; wait $RS 2>/dev/null

# --- systemd-journald, then journalctl -o json (only this script's identifiers) ----------------
/usr/lib/systemd/systemd-journald & JD=$!; sleep 2
for r in $(seq $REPEAT); do
echo "pipeline started" | systemd-cat -t msa-sample -p info
echo "disk almost full on /srv" | systemd-cat -t msa-sample -p warning
echo "backup of /srv finished in 42 s" | systemd-cat -t backup -p info
echo "backup verify failed: 3 files differ" | systemd-cat -t backup -p err
done
sleep 1
journalctl -D /run/log/journal -t msa-sample -t backup -o json --no-pager > journal.json
kill $JD; wait $JD 2>/dev/null

# --- strace -ttt: epoch seconds with microseconds ------------------------------------------------
for r in $(seq $REPEAT); do strace -ttt -A -e trace=openat,read,close -o strace_ttt.log cat /etc/hostname > /dev/null; done

# --- Java: java.util.logging's SimpleFormatter, and yyMMdd HHmmss / epoch-millisecond layouts -----
cat > Sample.java <<'EOF'
import java.text.SimpleDateFormat;
import java.util.Date;
import java.util.logging.*;
public class Sample {
    static Formatter pattern(String p, boolean millis) {
        return new Formatter() {
            public String format(LogRecord r) {
                String t = millis ? Long.toString(r.getMillis()) : new SimpleDateFormat(p).format(new Date(r.getMillis()));
                return t + " " + r.getThreadID() + " " + r.getLevel() + " " + r.getLoggerName() + ": " + r.getMessage() + "\n";
            }
        };
    }
    static Logger to(String name, String file, Formatter f) throws Exception {
        Logger log = Logger.getLogger(name);
        log.setUseParentHandlers(false);
        FileHandler h = new FileHandler(file);
        h.setFormatter(f);
        log.addHandler(h);
        return log;
    }
    public static void main(String[] a) throws Exception {
        Logger jul = to("dfs.DataNode", "jul.log", new SimpleFormatter());
        Logger hadoop = to("dfs.DataNode$PacketResponder", "hadoop_yymmdd.log", pattern("yyMMdd HHmmss", false));
        Logger ms = to("sensor.Reader", "java_epoch_ms.log", pattern(null, true));
        int n = 4 * Integer.parseInt(System.getenv("REPEAT"));
        for (int i = 0; i < n; i++) {
            jul.info("Receiving block blk_" + (1000 + i));
            hadoop.info("PacketResponder " + i + " for block blk_" + (1000 + i) + " terminating");
            ms.info("reading " + i + " stored");
            Thread.sleep(n > 4 ? 2 : 300);
        }
        jul.warning("Slow BlockReceiver write packet to mirror took 512ms");
        hadoop.warning("Slow BlockReceiver write packet to mirror took 512ms");
        ms.severe("sensor 7 did not answer");
    }
}
EOF
java Sample.java

# --- PostgreSQL 15: its stderr log (2026-12-03 18:15:00.123 UTC [1234] LOG:) -------------------
rm -rf pg && mkdir pg && chown nobody pg
su nobody -s /bin/sh -c "initdb -D $HERE/pg/data -A trust >/dev/null && pg_ctl -D $HERE/pg/data -o '-k $HERE/pg -p 8734 -c listen_addresses=' -l $HERE/pg/postgres.log start >/dev/null && sleep 2 && for r in \$(seq $REPEAT); do psql -h $HERE/pg -p 8734 -d postgres -c 'select nope' >/dev/null 2>&1; done; pg_ctl -D $HERE/pg/data stop >/dev/null"
ls -la

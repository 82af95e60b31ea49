# Copies a template to stdout, replacing every @@NAME@@ with the environment variable NAME
# escaped for a string quoted with `q` (a backslash before each backslash and each q).
# Containers render their configuration with it at start, so passwords come from Secrets
# (as environment variables) and never sit in a ConfigMap. POSIX awk: it runs on mawk
# (Debian, Ubuntu), gawk and busybox (Alpine) alike.
#
#   awk -v q="'" -f render.awk users.sql > /run/users.sql      (SQL)
#   awk -v q='"' -f render.awk proxysql.cnf > /run/proxysql.cnf (libconfig, JSON)
function escape(value,    out, i, c) {
    out = ""
    for (i = 1; i <= length(value); i++) {
        c = substr(value, i, 1)
        if (c == "\\" || c == q) {
            out = out "\\"
        }
        out = out c
    }
    return out
}
{
    line = $0
    out = ""
    while (match(line, /@@[A-Z_][A-Z0-9_]*@@/)) {
        name = substr(line, RSTART + 2, RLENGTH - 4)
        if (!(name in ENVIRON)) {
            print "render.awk: " name " is not set" > "/dev/stderr"
            failed = 1
            exit 1
        }
        out = out substr(line, 1, RSTART - 1) escape(ENVIRON[name])
        line = substr(line, RSTART + RLENGTH)
    }
    print out line
}
END {
    if (failed) {
        exit 1
    }
}

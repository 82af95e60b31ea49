#!/bin/sh
# Default command of the test image localhost/orchestrator:3.2.6 (like the upstream
# openarkcode/orchestrator image's): without /etc/orchestrator.conf.json, writes a minimal one
# (SQLite backend in /var/lib/orchestrator, HTTP on :3000, topology credentials from
# ORC_TOPOLOGY_USER / ORC_TOPOLOGY_PASSWORD), then serves HTTP from /usr/local/orchestrator.
set -e
if [ ! -e /etc/orchestrator.conf.json ]; then
    mkdir -p /var/lib/orchestrator
    cat >/etc/orchestrator.conf.json <<CONF
{
  "Debug": false,
  "ListenAddress": ":3000",
  "BackendDB": "sqlite",
  "SQLite3DataFile": "/var/lib/orchestrator/orchestrator.db",
  "MySQLTopologyUser": "${ORC_TOPOLOGY_USER:-orchestrator}",
  "MySQLTopologyPassword": "\${ORC_TOPOLOGY_PASSWORD}",
  "DiscoverByShowSlaveHosts": false,
  "InstancePollSeconds": 5
}
CONF
fi
cd /usr/local/orchestrator
exec /usr/local/orchestrator/orchestrator --config=/etc/orchestrator.conf.json http

# workerd's side of scripts/bench-sql: the class of worker.js with SQLite storage on local disk.
# The socket address and the storage directory are given on the command line.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .mainWorker),
    (name = "do-storage", disk = (path = "data/do", writable = true)),
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:8790", http = (), service = "main"),
  ],
);

const mainWorker :Workerd.Worker = (
  compatibilityDate = "2026-11-17",
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
  ],
  durableObjectNamespaces = [
    (className = "SqlBench", uniqueKey = "duro-sql-bench-v1", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "do-storage"),
  bindings = [
    (name = "SQL", durableObjectNamespace = "SqlBench"),
  ],
);

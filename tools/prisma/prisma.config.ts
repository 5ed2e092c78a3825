// Prisma CLI configuration for the offline WASM schema engine (the native engines cannot be
// downloaded on our machines). Even `migrate diff --from-empty` opens a connection through the
// adapter, so PRISMA_ADAPTER_URL must name a reachable PostgreSQL (any database; nothing is
// written). pg exits as soon as the pool is idle, so the CLI does not hang for 10 s.
import path from "node:path";
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";

const connectionString =
  process.env.PRISMA_ADAPTER_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";

export default defineConfig({
  schema: path.join(__dirname, "..", "..", "schema.prisma"),
  engine: "js",
  experimental: { adapter: true },
  adapter: async () =>
    new PrismaPg({ connectionString, allowExitOnIdle: true, idleTimeoutMillis: 100 }),
});

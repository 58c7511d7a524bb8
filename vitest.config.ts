import { defineConfig } from "vitest/config";

/**
 * Three projects:
 *  - unit: pure logic colocated with the source (`runtime/**`, `operator/**`, `evaluator/**`), and static
 *    checks of packaging files (`test/static`), needs nothing running;
 *  - integration: real PostgreSQL and Valkey/Redis (`test/integration`);
 *  - e2e: the real local control plane too (`test/e2e`), started once by the global setup.
 * Every test isolates itself (its own database, namespace and tenant ids), so files run in parallel.
 */
export default defineConfig({
  test: {
    reporters: ["default"],
    projects: [
      {
        test: {
          name: "unit",
          include: [
            "runtime/**/*.test.ts",
            "operator/**/*.test.ts",
            "evaluator/**/*.test.ts",
            "hack/**/*.test.ts",
            "test/support/**/*.test.ts",
            "test/static/**/*.test.ts",
          ],
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["test/support/globalSetup.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});

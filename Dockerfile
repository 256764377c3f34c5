# One image for every role of the sandbox: control plane, front proxy and the demo services.
FROM node:20-slim
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY proto ./proto
COPY src ./src
COPY examples ./examples
# npm ci runs `prepare`, which builds dist/.
RUN npm ci && npm prune --omit=dev && chown -R node:node /app
USER node
ENV NODE_ENV=production
# Two glibc malloc arenas: less memory stranded across node's threads (src/workers/heap-flags.ts).
ENV MALLOC_ARENA_MAX=2
# A 32 MB semi-space lets seconds-long shadows die young instead of piling up in the old space
# between mark-compacts (src/workers/heap-flags.ts; README "Memory"). V8 reads it at start-up,
# so it is a node flag here; --concurrency N workers get it from the supervisor.
ENTRYPOINT ["node", "--max-semi-space-size=8", "dist/src/cli.js"]
CMD ["--help"]

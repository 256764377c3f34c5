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
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["--help"]

# mclust's side of benchmarks/mclust.py: one BIC table, its log-likelihoods and its time.
#
#   Rscript benchmarks/mclust.R data.csv out.csv G_max MODELS [wall|cpu]
#
# data.csv: the rows, a header line and no row names. MODELS: comma-separated mclust
# names (EII,VII,...,VVV). Writes out.csv with one row per (model, G): the log-likelihood
# (from the BIC: BIC = 2 logL - npar log n, npar = nMclustParams), mclust's BIC, and the
# seconds of the fits alone, by the wall clock or the process's CPU time (mclustBIC, which grows the hc tree once and runs every
# model and G; reading the data and loading mclust are not timed). Unfitted cells
# (singular covariance) are NA.
suppressMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
X <- as.matrix(read.csv(args[1]))
G <- seq_len(as.integer(args[3]))
models <- strsplit(args[4], ",")[[1]]
clock <- if (length(args) >= 5) args[5] else "wall"
# wall: elapsed seconds; cpu: this process's user + system seconds (steadier on a shared
# machine: another process's work does not count)
now <- function() {
  t <- proc.time()
  if (clock == "cpu") t[["user.self"]] + t[["sys.self"]] else t[["elapsed"]]
}
n <- nrow(X)
d <- ncol(X)
t0 <- now()
b <- mclustBIC(X, G = G, modelNames = models, verbose = FALSE)
seconds <- now() - t0
rows <- list()
for (m in models) for (g in G) {
  bic <- b[as.character(g), m]
  npar <- nMclustParams(m, d, g)
  rows[[length(rows) + 1]] <- data.frame(model = m, G = g, bic = bic,
                                         loglik = (bic + npar * log(n)) / 2,
                                         seconds = seconds)
}
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
cat(sprintf("mclust %s, %s\n", packageVersion("mclust"), R.version.string))

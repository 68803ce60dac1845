// The data pipeline as MPI ranks (`mpirun -np N todae data run ...`): start-up, the few
// collectives the stages need (gather to rank 0, broadcast and scatter from it, barrier), the
// rank-partitioned chunk reader and the output sink whose parts rank 0 publishes.
//
// MPI is optional at build time (TODAE_HAVE_MPI); without it, or without a launcher, the process
// is rank 0 of 1 and every function here is the single-process code path.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <optional>
#include <unistd.h>

#ifdef TODAE_HAVE_MPI
#include <mpi.h>
#endif

#include "data/data_impl.h"

namespace todae {

namespace {
data::Ranks g_ranks;
bool g_mpi = false;  // this process called MPI_Init
}  // namespace

DataRanks data_mpi_init() {
  const char* launched = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!launched) launched = std::getenv("PMI_SIZE");
  if (launched && std::atoi(launched) > 1) {
#ifdef TODAE_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      MPI_Init(nullptr, nullptr);
      g_mpi = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_ranks.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_ranks.world);
    const char* lw = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    g_ranks.local_world = lw ? std::max(1, std::atoi(lw)) : g_ranks.world;
#else
    fail("started by mpirun with ", launched,
         " ranks, but this todae was built without MPI (install libopenmpi-dev and rebuild)");
#endif
  }
  return {g_ranks.rank, g_ranks.world, g_ranks.local_world};
}

void data_mpi_finalize() {
#ifdef TODAE_HAVE_MPI
  if (g_mpi) MPI_Finalize();
  g_mpi = false;
#endif
  g_ranks = {};
}

void data_mpi_abort(const std::string& what) {
  std::fprintf(stderr, "todae: error (rank %d of %d): %s\n", g_ranks.rank, g_ranks.world, what.c_str());
  std::fflush(stderr);
#ifdef TODAE_HAVE_MPI
  if (g_ranks.world > 1) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
  std::_Exit(1);
}

namespace data {

const Ranks& ranks() { return g_ranks; }

#ifdef TODAE_HAVE_MPI
namespace {
constexpr size_t kPiece = size_t(1) << 30;  // MPI counts are int: messages go in 1 GiB pieces

void send_bytes(const std::string& s, int to) {
  uint64_t n = s.size();
  MPI_Send(&n, 1, MPI_UINT64_T, to, 7, MPI_COMM_WORLD);
  for (size_t off = 0; off < s.size(); off += kPiece)
    MPI_Send(s.data() + off, int(std::min(kPiece, s.size() - off)), MPI_BYTE, to, 8, MPI_COMM_WORLD);
}

std::string recv_bytes(int from) {
  uint64_t n = 0;
  MPI_Recv(&n, 1, MPI_UINT64_T, from, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  std::string s(n, '\0');
  for (size_t off = 0; off < s.size(); off += kPiece)
    MPI_Recv(s.data() + off, int(std::min(kPiece, s.size() - off)), MPI_BYTE, from, 8, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
  return s;
}
}  // namespace
#endif

void barrier() {
#ifdef TODAE_HAVE_MPI
  if (distributed()) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

std::vector<std::string> gather(std::string mine) {
  std::vector<std::string> out;
  if (!distributed()) {
    out.push_back(std::move(mine));
    return out;
  }
#ifdef TODAE_HAVE_MPI
  if (g_ranks.rank == 0) {
    out.resize(size_t(g_ranks.world));
    out[0] = std::move(mine);
    for (int r = 1; r < g_ranks.world; ++r) out[size_t(r)] = recv_bytes(r);
  } else {
    send_bytes(mine, 0);
  }
#endif
  return out;
}

void broadcast(std::string& s) {
#ifdef TODAE_HAVE_MPI
  if (!distributed()) return;
  uint64_t n = s.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  if (g_ranks.rank != 0) s.assign(n, '\0');
  for (size_t off = 0; off < n; off += kPiece)
    MPI_Bcast(s.data() + off, int(std::min<size_t>(kPiece, n - off)), MPI_BYTE, 0, MPI_COMM_WORLD);
#else
  (void)s;
#endif
}

std::string scatter(std::vector<std::string> parts) {
  if (!distributed()) return parts.empty() ? std::string() : std::move(parts[0]);
#ifdef TODAE_HAVE_MPI
  if (g_ranks.rank == 0) {
    if (parts.size() != size_t(g_ranks.world)) fail("scatter: ", parts.size(), " parts for ", g_ranks.world, " ranks");
    for (int r = 1; r < g_ranks.world; ++r) send_bytes(parts[size_t(r)], r);
    return std::move(parts[0]);
  }
  return recv_bytes(0);
#else
  return {};
#endif
}

std::vector<uint64_t> gather_u64(uint64_t v, std::vector<uint64_t>* prefix) {
  std::string mine(reinterpret_cast<const char*>(&v), 8);
  std::vector<std::string> all = gather(std::move(mine));
  std::string flat;
  for (auto& s : all) flat += s;
  broadcast(flat);
  std::vector<uint64_t> out(flat.size() / 8);
  std::memcpy(out.data(), flat.data(), out.size() * 8);
  if (prefix) {
    prefix->assign(out.size() + 1, 0);
    for (size_t i = 0; i < out.size(); ++i) (*prefix)[i + 1] = (*prefix)[i] + out[i];
  }
  return out;
}

void prepare_output_dir_ranked(const std::string& dir, const std::vector<InputFile>& inputs, const InputOptions& in) {
  // Only rank 0 checks and prepares the folder (which removes temporary files): the other ranks
  // wait, so none of their temporary outputs can be removed from under them.
  if (lead()) prepare_output_dir(dir, inputs, in);
  barrier();
}

// ---- the rank-partitioned reader ----------------------------------------------------------------
//
// The inputs, in order, are one stream of on-disk bytes [0, T). Rank r owns the chunks that start
// in [r*T/N, (r+1)*T/N) ("start": the file's offset in the stream plus the bytes its reader had
// consumed before the chunk, capped at the file's size). Every file is read by a reader of its own,
// so a chunk's cut and start depend only on that file's bytes, and all ranks agree on the owner of
// every chunk. Owners never decrease along the stream: each rank holds a contiguous run of chunks,
// and rank order is input order. A rank reads only the files its range touches, and stops at the
// first chunk past its range; chunks before its range (in a file it shares with the previous
// rank) are cut but not parsed.

void for_each_chunk_ranked(const std::vector<InputFile>& files, const InputOptions& in, int threads, bool progress,
                           const std::string& label, const std::function<void(ChunkDocs&)>& work,
                           const std::function<void(ChunkDocs&)>& done) {
  if (!distributed()) return for_each_chunk(files, in, threads, progress, label, work, done);
  const uint64_t N = uint64_t(g_ranks.world), R = uint64_t(g_ranks.rank);
  std::vector<uint64_t> prefix(files.size() + 1, 0);
  for (size_t k = 0; k < files.size(); ++k) prefix[k + 1] = prefix[k] + files[k].bytes;
  const uint64_t T = prefix.back();
  auto owner = [&](uint64_t p) -> uint64_t {
    if (T == 0) return 0;
    return std::min<uint64_t>(N - 1, uint64_t((unsigned __int128)p * N / T));
  };
  std::optional<Progress> bar;
  if (progress) bar.emplace(cat(label, " (rank ", R, "/", N, ")"), T / N + 1);
  size_t k = 0;
  while (k < files.size() && owner(prefix[k + 1]) < R) ++k;  // files wholly before this rank's range
  std::vector<InputFile> one;
  std::unique_ptr<ChunkReader> reader;
  bool finished = false;
  uint64_t shown = 0, produced = 0;  // produced: bytes of the chunks this rank owns
  chunk_pipeline(
      files, in, threads,
      [&](Chunk& chunk) {
        while (!finished) {
          if (!reader) {
            if (k >= files.size() || owner(prefix[k]) > R) {
              finished = true;
              break;
            }
            one.assign(1, files[k]);
            reader = std::make_unique<ChunkReader>(one, in);
          }
          uint64_t start = prefix[k] + std::min<uint64_t>(reader->bytes_read(), files[k].bytes);
          if (!reader->next(chunk)) {
            reader.reset();
            ++k;
            continue;
          }
          uint64_t o = owner(start);
          if (o < R) {
            chunk = Chunk();
            continue;
          }
          if (o > R) {
            finished = true;
            break;
          }
          chunk.file = k;
          produced += chunk.data.size();
          return true;
        }
        return false;
      },
      work, done,
      [&] {
        if (bar && produced > shown) {
          bar->add(produced - shown);
          shown = produced;
        }
      });
  if (bar) bar->finish();
}

// ---- outputs --------------------------------------------------------------------------------------

OutputSink::OutputSink(const CommonOptions& co) : dir_(co.output) {
  if (lead()) {
    writer_ = std::make_unique<PartWriter>(co.output, co.compress, co.part_bytes);
  } else {
    slice_ = temp_name(cat(co.output, "/.rank-", g_ranks.rank, ".jsonl"));
    fd_ = ::open(slice_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot write ", slice_, ": ", std::strerror(errno));
  }
}

OutputSink::~OutputSink() {
  if (fd_ >= 0) ::close(fd_);
  if (!slice_.empty()) ::unlink(slice_.c_str());
}

void OutputSink::write(std::string_view records) {
  if (writer_) return writer_->write(records);
  write_all(fd_, records, slice_);
  bytes_ += records.size();
}

std::vector<std::string> OutputSink::finish() {
  if (!distributed()) return writer_->finish();
  if (fd_ >= 0) {
    if (::close(fd_) != 0) fail("cannot write ", slice_, ": ", std::strerror(errno));
    fd_ = -1;
  }
  std::vector<std::string> slices = gather(slice_);
  if (!lead()) {
    barrier();  // rank 0 has read the slice: it may go
    return {};
  }
  // Rank 0 appends the other ranks' records in rank order, in pieces that end at record ends, so
  // parts roll over exactly where one process would have rolled them.
  std::string buf, carry;
  for (size_t r = 1; r < slices.size(); ++r) {
    int fd = ::open(slices[r].c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot read ", slices[r], " (rank ", r, "'s output; is the output folder on a filesystem all ranks share?): ",
                     std::strerror(errno));
    buf.resize(8 << 20);
    while (true) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::close(fd);
        fail("cannot read ", slices[r], ": ", std::strerror(errno));
      }
      if (n == 0) break;
      carry.append(buf.data(), size_t(n));
      size_t end = carry.rfind('\n');
      if (end == std::string::npos) continue;
      writer_->write(std::string_view(carry).substr(0, end + 1));
      carry.erase(0, end + 1);
    }
    ::close(fd);
    if (!carry.empty()) fail(slices[r], ": rank ", r, "'s output ends inside a record");
  }
  barrier();
  return writer_->finish();
}

// ---- reports --------------------------------------------------------------------------------------

void reduce_report(StageReport& total) {
  if (!distributed()) return;
  std::vector<std::string> all = gather(report_to_json(total));
  if (!lead()) return;
  std::string per_rank = cat(total.docs_in);
  for (size_t r = 1; r < all.size(); ++r) {
    StageReport p = parse_report(all[r], cat("rank ", r, " report"));
    per_rank += cat(" + ", p.docs_in);
    total.merge(p);
  }
  std::fprintf(stderr, "%s: documents in per rank: %s\n", total.stage.c_str(), per_rank.c_str());
}

}  // namespace data
}  // namespace todae

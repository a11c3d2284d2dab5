// File system helpers for crash-safe state: atomic replacement, durable
// directories, hashing. Private header.
#pragma once

#include "vmupdate/error.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace vmupdate {

/// Replaces `path` with `content` so that a crash leaves either the old or the new
/// file, complete: a temporary file in the same directory is written, synced and
/// renamed over `path`, then the directory is synced. The file gets `mode` exactly.
[[nodiscard]] Result<void> write_file_atomic(const std::string& path, std::string_view content,
                                             mode_t mode);

/// Reads a whole file; Errc::not_found when it does not exist, Errc::invalid_input
/// when it is larger than `max` bytes.
[[nodiscard]] Result<std::string> read_file(const std::string& path, std::size_t max);

/// Reads the last `max` bytes of a file (all of it when smaller); Errc::not_found
/// when it does not exist.
[[nodiscard]] Result<std::string> read_file_tail(const std::string& path, std::size_t max);

/// Owner and group for make_dir.
struct Owner {
    uid_t uid;
    gid_t gid;
};

/// Creates directory `path` if missing and enforces `mode` (and `owner` when
/// given); Errc::refused when `path` is a symbolic link or not a directory.
[[nodiscard]] Result<void> make_dir(const std::string& path, mode_t mode,
                                    std::optional<Owner> owner = std::nullopt);

/// Flushes a file or directory to stable storage.
[[nodiscard]] Result<void> fsync_path(const std::string& path);

/// The lowercase hex SHA-256 of a file's content.
[[nodiscard]] Result<std::string> sha256_file(const std::string& path);

/// The directory part of `path` ("." when it has none), for syncing after a rename.
[[nodiscard]] std::string parent_dir(std::string_view path);

/// Incremental SHA-256 (FIPS 180-4).
class Sha256 {
public:
    Sha256();
    /// Hashes more input.
    void update(std::string_view data);
    /// Finishes and returns the lowercase hex digest; the object is spent afterwards.
    [[nodiscard]] std::string hex_digest();

private:
    void block(const unsigned char* p);

    std::array<std::uint32_t, 8> h_;
    std::array<unsigned char, 64> buffer_{};
    std::size_t buffered_ = 0;
    std::uint64_t length_ = 0;
};

} // namespace vmupdate

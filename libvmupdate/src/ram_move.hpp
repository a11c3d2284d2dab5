// Moving guest RAM out of a handed-over memfd into a file without ever holding
// it twice and without ever losing it: each chunk is checked against the
// checksum taken at hand-over time, written, and only then freed in the
// source; a failure part-way moves the written chunks back, so the source is
// whole again for a later try. Private header.
#pragma once

#include "vmupdate/error.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace vmupdate {

/// The unit of copying, freeing and checksumming.
inline constexpr std::size_t ram_chunk = std::size_t{2} << 20;

/// CRC-32C (Castagnoli) of `n` bytes, continuing `crc`; SSE 4.2's instruction
/// when the CPU has it (~8 GB/s), a table otherwise.
[[nodiscard]] std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n);

/// One CRC-32C per ram_chunk of the first `size` bytes of `fd`, 8 hex digits
/// each; errors name `what`.
[[nodiscard]] Result<std::string> chunk_sums(int fd, std::uint64_t size, const std::string& what);

/// Moves `size` bytes from `src` to `dst` (an empty file), then runs `commit`
/// (which makes `dst` the guest's file): zero pages stay holes; each chunk must
/// match `sums` (chunk_sums of the RAM when it was handed over; empty: not
/// checked) before it is written, and is punched out of `src` only once
/// written. On any failure, `commit`'s included, the chunks already moved are
/// moved back, so `src` again holds all of the RAM and `dst` none; Errc::verify
/// when a chunk does not match (the source is not the guest's RAM),
/// Errc::ram_lost when moving back failed too. Errors name `what`.
[[nodiscard]] Result<void> move_ram(int src, int dst, std::uint64_t size, std::string_view sums,
                                    const std::string& what,
                                    const std::function<Result<void>()>& commit);

} // namespace vmupdate

// Incremental SHA-256, for checksums of vmupdate's own files. Private header.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vmupdate {

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

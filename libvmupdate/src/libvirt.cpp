#include "vmupdate/libvirt.hpp"

#include "libvirt_impl.hpp"

#include <mutex>

namespace vmupdate {

namespace {

void silence(void*, virErrorPtr) {}

// libvirt prints every error to stderr unless told otherwise; only main() prints.
void init_libvirt() {
    static std::once_flag once;
    std::call_once(once, [] {
        virInitialize();
        virSetErrorFunc(nullptr, &silence);
    });
}

std::string uuid_of(virDomain* dom) {
    char buf[VIR_UUID_STRING_BUFLEN] = {};
    if (virDomainGetUUIDString(dom, buf) != 0)
        return {};
    return buf;
}

// Accepts the canonical 36-character form only, as virsh prints it.
bool looks_like_uuid(const std::string& s, unsigned char* raw) {
    if (s.size() != 36)
        return false;
    int k = 0;
    for (size_t i = 0; i < s.size(); i += 2) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
            ++i;
        }
        auto hex = [](char c) {
            return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        };
        int hi = hex(s[i]), lo = i + 1 < s.size() ? hex(s[i + 1]) : -1;
        if (hi < 0 || lo < 0 || k >= VIR_UUID_BUFLEN)
            return false;
        raw[k++] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return k == VIR_UUID_BUFLEN;
}

} // namespace

std::string last_libvirt_error() {
    const char* msg = virGetLastErrorMessage();
    return msg ? msg : "unknown libvirt error";
}

Domain::Domain(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Domain::Domain(Domain&&) noexcept = default;
Domain& Domain::operator=(Domain&&) noexcept = default;
Domain::~Domain() = default;

const std::string& Domain::name() const { return impl_->name; }
const std::string& Domain::uuid() const { return impl_->uuid; }

Result<bool> Domain::is_active() const {
    int r = virDomainIsActive(impl_->dom.get());
    if (r < 0)
        return fail(Errc::libvirt, impl_->name, "cannot query whether the domain runs", last_libvirt_error());
    return r == 1;
}

Result<bool> Domain::is_persistent() const {
    int r = virDomainIsPersistent(impl_->dom.get());
    if (r < 0)
        return fail(Errc::libvirt, impl_->name, "cannot query whether the domain is persistent",
                    last_libvirt_error());
    return r == 1;
}

Result<std::string> Domain::inactive_xml() const {
    char* xml = virDomainGetXMLDesc(impl_->dom.get(), VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
    if (xml == nullptr)
        return fail(Errc::libvirt, impl_->name, "cannot read the persistent definition", last_libvirt_error());
    std::string out(xml);
    free(xml);
    return out;
}

Result<std::string> Domain::live_xml() const {
    char* xml = virDomainGetXMLDesc(impl_->dom.get(), VIR_DOMAIN_XML_SECURE);
    if (xml == nullptr)
        return fail(Errc::libvirt, impl_->name, "cannot read the live definition", last_libvirt_error());
    std::string out(xml);
    free(xml);
    return out;
}

Domain make_domain(std::shared_ptr<Connection::Impl> conn, virDomain* dom) {
    auto impl = std::make_unique<Domain::Impl>();
    impl->conn = std::move(conn);
    impl->dom.reset(dom);
    const char* name = virDomainGetName(dom);
    impl->name = name ? name : "";
    impl->uuid = uuid_of(dom);
    return Domain(std::move(impl));
}

Connection::Connection(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

Result<Connection> Connection::open(const std::string& uri) {
    init_libvirt();
    virConnect* c = virConnectOpen(uri.empty() ? nullptr : uri.c_str());
    if (c == nullptr)
        return fail(Errc::libvirt, uri.empty() ? std::string("libvirt") : uri, "cannot connect to libvirt",
                    last_libvirt_error());
    auto impl = std::make_shared<Impl>();
    impl->conn.reset(c);
    return Connection(std::move(impl));
}

Result<std::string> Connection::uri() const {
    char* u = virConnectGetURI(impl_->conn.get());
    if (u == nullptr)
        return fail(Errc::libvirt, "libvirt", "cannot read the connection URI", last_libvirt_error());
    std::string out(u);
    free(u);
    return out;
}

Result<Domain> Connection::lookup(std::string_view name_or_uuid) const {
    std::string key(name_or_uuid);
    virDomain* dom = virDomainLookupByName(impl_->conn.get(), key.c_str());
    if (dom == nullptr) {
        int code = virGetLastErrorCode();
        std::string cause = last_libvirt_error();
        unsigned char raw[VIR_UUID_BUFLEN];
        if (code == VIR_ERR_NO_DOMAIN && looks_like_uuid(key, raw))
            dom = virDomainLookupByUUID(impl_->conn.get(), raw);
        if (dom == nullptr)
            return fail(code == VIR_ERR_NO_DOMAIN ? Errc::not_found : Errc::libvirt, key,
                        code == VIR_ERR_NO_DOMAIN ? "no such domain" : "cannot look up the domain", cause);
    }
    return make_domain(impl_, dom);
}

Result<std::vector<Domain>> Connection::domains() const {
    virDomainPtr* list = nullptr;
    int n = virConnectListAllDomains(impl_->conn.get(), &list, 0);
    if (n < 0)
        return fail(Errc::libvirt, "libvirt", "cannot list domains", last_libvirt_error());
    std::vector<Domain> out;
    out.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
        out.push_back(make_domain(impl_, list[i]));
    free(list);
    return out;
}

Result<Domain> Connection::define(std::string_view xml) const {
    std::string text(xml);
    virDomain* dom = virDomainDefineXMLFlags(impl_->conn.get(), text.c_str(), VIR_DOMAIN_DEFINE_VALIDATE);
    if (dom == nullptr)
        return fail(Errc::libvirt, "", "cannot define the domain", last_libvirt_error());
    return make_domain(impl_, dom);
}

bool is_local_qemu_uri(std::string_view uri) {
    return uri == "qemu:///system" || uri == "qemu:///session" || uri == "qemu:///embed";
}

} // namespace vmupdate

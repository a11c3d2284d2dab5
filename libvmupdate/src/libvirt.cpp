#include "vmupdate/libvirt.hpp"

#include "clock.hpp"
#include "libvirt_impl.hpp"

#include <array>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <libvirt-glib/libvirt-glib.h>
#include <libvirt/libvirt-qemu.h>
#include <mutex>
#include <optional>
#include <thread>

namespace vmupdate {

namespace {

void silence(void*, virErrorPtr) {}

// libvirt prints every error to stderr unless told otherwise; only main() prints.
void init_libvirt() {
    static std::once_flag once;
    std::call_once(once, [] {
        virInitialize();
        virSetErrorFunc(nullptr, &silence);
        // Lifecycle events reach us through GLib's main loop (EventWatch); the
        // implementation must be registered before the first connection opens.
        gvir_event_register();
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
            return c >= '0' && c <= '9'   ? c - '0'
                   : c >= 'a' && c <= 'f' ? c - 'a' + 10
                   : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : -1;
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

namespace {

// The answer of a virDomainIs* or virDomainHas* call: negative is libvirt's
// error, reported as `step` on `domain`.
Result<bool> yes_or_no(int r, const std::string& domain, const char* step) {
    if (r < 0)
        return fail(Errc::libvirt, domain, step, last_libvirt_error());
    return r == 1;
}

// A definition libvirt returned (freed here); null is libvirt's error.
Result<std::string> take_xml(char* xml, const std::string& domain, const char* step) {
    if (xml == nullptr)
        return fail(Errc::libvirt, domain, step, last_libvirt_error());
    std::string out(xml);
    free(xml);
    return out;
}

} // namespace

Domain::Domain(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Domain::Domain(Domain&&) noexcept = default;
Domain& Domain::operator=(Domain&&) noexcept = default;
Domain::~Domain() = default;

const std::string& Domain::name() const {
    return impl_->name;
}
const std::string& Domain::uuid() const {
    return impl_->uuid;
}

Result<bool> Domain::is_active() const {
    return yes_or_no(virDomainIsActive(impl_->dom.get()), impl_->name,
                     "cannot query whether the domain runs");
}

Result<bool> Domain::is_persistent() const {
    return yes_or_no(virDomainIsPersistent(impl_->dom.get()), impl_->name,
                     "cannot query whether the domain is persistent");
}

Result<std::string> Domain::inactive_xml() const {
    return take_xml(
        virDomainGetXMLDesc(impl_->dom.get(), VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE),
        impl_->name, "cannot read the persistent definition");
}

Result<std::string> Domain::live_xml() const {
    return take_xml(virDomainGetXMLDesc(impl_->dom.get(), VIR_DOMAIN_XML_SECURE), impl_->name,
                    "cannot read the live definition");
}

int Domain::id() const {
    unsigned int id = virDomainGetID(impl_->dom.get());
    return id == static_cast<unsigned int>(-1) ? -1 : static_cast<int>(id);
}

Result<bool> Domain::has_managed_save() const {
    return yes_or_no(virDomainHasManagedSaveImage(impl_->dom.get(), 0), impl_->name,
                     "cannot query the managed-save image");
}

Result<void> Domain::managed_save() const {
    if (virDomainManagedSave(impl_->dom.get(), 0) < 0)
        return fail(Errc::libvirt, impl_->name, "managed save failed", last_libvirt_error());
    return {};
}

Result<void> Domain::start() const {
    if (virDomainCreate(impl_->dom.get()) < 0)
        return fail(Errc::libvirt, impl_->name, "cannot start the domain", last_libvirt_error());
    return {};
}

Result<bool> Domain::is_paused() const {
    int state = 0, reason = 0;
    if (virDomainGetState(impl_->dom.get(), &state, &reason, 0) < 0)
        return fail(Errc::libvirt, impl_->name, "cannot query the domain's state",
                    last_libvirt_error());
    return state == VIR_DOMAIN_PAUSED;
}

Result<void> Domain::resume() const {
    if (virDomainResume(impl_->dom.get()) < 0)
        return fail(Errc::libvirt, impl_->name, "cannot resume the domain", last_libvirt_error());
    return {};
}

Result<void> Domain::remove_managed_save() const {
    if (virDomainManagedSaveRemove(impl_->dom.get(), 0) < 0)
        return fail(Errc::libvirt, impl_->name, "cannot remove the managed-save image",
                    last_libvirt_error());
    return {};
}

Result<std::string> Domain::qemu_monitor_command(std::string_view command_json) const {
    std::string cmd(command_json);
    char* reply = nullptr;
    if (virDomainQemuMonitorCommand(impl_->dom.get(), cmd.c_str(), &reply, 0) < 0)
        return fail(Errc::libvirt, impl_->name, "QEMU monitor passthrough failed",
                    last_libvirt_error());
    std::string out(reply ? reply : "");
    free(reply);
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
        return fail(Errc::libvirt, uri.empty() ? std::string("libvirt") : uri,
                    "cannot connect to libvirt", last_libvirt_error());
    auto impl = std::make_shared<Impl>();
    impl->conn.reset(c);
    return Connection(std::move(impl));
}

Result<std::string> Connection::uri() const {
    char* u = virConnectGetURI(impl_->conn.get());
    if (u == nullptr)
        return fail(Errc::libvirt, "libvirt", "cannot read the connection URI",
                    last_libvirt_error());
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
                        code == VIR_ERR_NO_DOMAIN ? "no such domain" : "cannot look up the domain",
                        cause);
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
    virDomain* dom =
        virDomainDefineXMLFlags(impl_->conn.get(), text.c_str(), VIR_DOMAIN_DEFINE_VALIDATE);
    if (dom == nullptr)
        return fail(Errc::libvirt, "", "cannot define the domain", last_libvirt_error());
    return make_domain(impl_, dom);
}

Result<std::string> Connection::hypervisor_version() const {
    unsigned long v = 0;
    if (virConnectGetVersion(impl_->conn.get(), &v) < 0)
        return fail(Errc::libvirt, "libvirt", "cannot read the hypervisor version",
                    last_libvirt_error());
    return std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." +
           std::to_string(v % 1000);
}

namespace {

std::string event_name(int event) {
    static constexpr std::array names{"defined", "undefined", "started",     "suspended", "resumed",
                                      "stopped", "shutdown",  "pmsuspended", "crashed"};
    return event >= 0 && static_cast<size_t>(event) < names.size()
               ? names[static_cast<size_t>(event)]
               : std::to_string(event);
}

std::string detail_name(int event, int detail) {
    auto pick = [detail](std::initializer_list<const char*> names) -> std::string {
        if (detail >= 0 && static_cast<size_t>(detail) < names.size())
            return *(names.begin() + detail);
        return std::to_string(detail);
    };
    switch (event) {
    case VIR_DOMAIN_EVENT_STARTED:
        return pick({"booted", "migrated", "restored", "from-snapshot", "wakeup", "recreated"});
    case VIR_DOMAIN_EVENT_SUSPENDED:
        return pick({"paused", "migrated", "ioerror", "watchdog", "restored", "from-snapshot",
                     "api-error", "postcopy", "postcopy-failed"});
    case VIR_DOMAIN_EVENT_RESUMED:
        return pick({"unpaused", "migrated", "from-snapshot", "postcopy", "postcopy-failed"});
    case VIR_DOMAIN_EVENT_STOPPED:
        return pick({"shutdown", "destroyed", "crashed", "migrated", "saved", "failed",
                     "from-snapshot", "recreated"});
    default:
        return std::to_string(detail);
    }
}

} // namespace

struct EventWatch::Impl {
    std::shared_ptr<Connection::Impl> conn;
    int callback_id = -1;
    std::atomic<bool> stop{false};
    std::thread loop;
    mutable std::mutex mutex;
    mutable std::condition_variable changed;
    std::vector<LifecycleEvent> received;

    static int on_event(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
        auto* self = static_cast<Impl*>(opaque);
        LifecycleEvent e{uuid_of(dom), event_name(event), detail_name(event, detail), now_us()};
        {
            std::lock_guard lock(self->mutex);
            self->received.push_back(std::move(e));
        }
        self->changed.notify_all();
        return 0;
    }

    ~Impl() {
        if (callback_id >= 0)
            virConnectDomainEventDeregisterAny(conn->conn.get(), callback_id);
        stop = true;
        g_main_context_wakeup(nullptr);
        if (loop.joinable())
            loop.join();
    }
};

EventWatch::EventWatch(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EventWatch::EventWatch(EventWatch&&) noexcept = default;
EventWatch& EventWatch::operator=(EventWatch&&) noexcept = default;
EventWatch::~EventWatch() = default;

Result<EventWatch> EventWatch::start(const Connection& conn) {
    auto impl = std::make_unique<Impl>();
    impl->conn = conn.impl_;
    impl->callback_id = virConnectDomainEventRegisterAny(
        impl->conn->conn.get(), nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
        VIR_DOMAIN_EVENT_CALLBACK(&Impl::on_event), impl.get(), nullptr);
    if (impl->callback_id < 0)
        return fail(Errc::libvirt, "libvirt", "cannot subscribe to domain events",
                    last_libvirt_error());
    Impl* raw = impl.get();
    impl->loop = std::thread([raw] {
        while (!raw->stop)
            g_main_context_iteration(nullptr, TRUE);
    });
    return EventWatch(std::move(impl));
}

Result<LifecycleEvent> EventWatch::wait_for(std::string_view uuid, std::string_view event,
                                            std::chrono::milliseconds timeout,
                                            std::int64_t since_us) const {
    std::unique_lock lock(impl_->mutex);
    std::optional<LifecycleEvent> found;
    impl_->changed.wait_for(lock, timeout, [&] {
        for (const auto& e : impl_->received)
            // An older one (an earlier save, restore or start) is not the awaited one.
            if (e.uuid == uuid && e.event == event && e.at_us >= since_us) {
                found = e;
                return true;
            }
        return false;
    });
    if (!found)
        return fail(Errc::timeout, std::string(uuid),
                    "no " + std::string(event) + " event from libvirt",
                    "waited " + std::to_string(timeout.count()) + " ms");
    return *found;
}

std::vector<LifecycleEvent> EventWatch::events(std::string_view uuid) const {
    std::lock_guard lock(impl_->mutex);
    std::vector<LifecycleEvent> out;
    for (const auto& e : impl_->received)
        if (e.uuid == uuid)
            out.push_back(e);
    return out;
}

bool is_local_qemu_uri(std::string_view uri) {
    return uri == "qemu:///system" || uri == "qemu:///session" || uri == "qemu:///embed";
}

} // namespace vmupdate

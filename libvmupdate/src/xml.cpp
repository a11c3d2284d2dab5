#include "xml.hpp"

#include <algorithm>
#include <climits>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>

namespace vmupdate::xml {
namespace {

const xmlChar* x(const char* s) {
    return reinterpret_cast<const xmlChar*>(s);
}
std::string to_string(const xmlChar* s) {
    return s ? reinterpret_cast<const char*>(s) : "";
}

// libxml2 prints parse errors to stderr by default; only main() prints, so
// errors are collected here and returned as values.
struct ErrorCapture {
    std::string first;
    static void on_error(void* self, xmlError* err) {
        auto* capture = static_cast<ErrorCapture*>(self);
        if (!capture->first.empty() || err == nullptr)
            return;
        std::string msg = err->message ? err->message : "unknown error";
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
            msg.pop_back();
        capture->first = "line " + std::to_string(err->line) + ": " + msg;
    }
    static void on_generic(void*, const char*, ...) {}
    ErrorCapture() {
        xmlSetStructuredErrorFunc(this, &on_error);
        xmlSetGenericErrorFunc(nullptr, &on_generic);
    }
    ~ErrorCapture() {
        xmlSetStructuredErrorFunc(nullptr, nullptr);
        xmlSetGenericErrorFunc(nullptr, nullptr);
    }
    ErrorCapture(const ErrorCapture&) = delete;
    ErrorCapture& operator=(const ErrorCapture&) = delete;
};

std::string indent_before(const xmlNode* n) {
    if (n == nullptr || n->prev == nullptr || n->prev->type != XML_TEXT_NODE)
        return {};
    std::string ws = to_string(n->prev->content);
    auto nl = ws.rfind('\n');
    if (nl == std::string::npos)
        return {};
    return ws.substr(nl + 1);
}

bool is_blank_text(const xmlNode* n) {
    if (n == nullptr || n->type != XML_TEXT_NODE)
        return false;
    std::string s = to_string(n->content);
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

} // namespace

Result<Doc> parse(std::string_view text, std::string_view object) {
    if (text.size() > INT_MAX)
        return fail(Errc::invalid_input, std::string(object), "cannot parse domain XML",
                    "input too large");
    ErrorCapture capture;
    Doc doc(xmlReadMemory(text.data(), static_cast<int>(text.size()), nullptr, nullptr,
                          XML_PARSE_NONET | XML_PARSE_NOWARNING));
    if (!doc) {
        return fail(Errc::invalid_input, std::string(object), "cannot parse XML",
                    capture.first.empty() ? "not well-formed" : capture.first);
    }
    // Entities would be kept as references (no XML_PARSE_NOENT) and then reach
    // libvirt unexpanded; libvirt's own documents never carry a DOCTYPE.
    if (doc->intSubset != nullptr || doc->extSubset != nullptr)
        return fail(Errc::invalid_input, std::string(object), "cannot parse XML",
                    "a DOCTYPE declaration is not allowed in libvirt XML");
    if (xmlDocGetRootElement(doc.get()) == nullptr)
        return fail(Errc::invalid_input, std::string(object), "cannot parse XML",
                    "no root element");
    return doc;
}

namespace {

// The entity that stands for `c` in an attribute value (`attribute`) or in
// text; nullptr when `c` stands for itself.
const char* entity(char c, bool attribute) {
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '\'':
        return attribute ? "&apos;" : nullptr;
    case '\n':
        return attribute ? "&#10;" : nullptr;
    case '\r':
        return "&#13;";
    case '\t':
        return attribute ? "&#9;" : nullptr;
    default:
        return nullptr;
    }
}

void escape(std::string& out, const xmlChar* raw, bool attribute) {
    for (const char* c = reinterpret_cast<const char*>(raw); c && *c; ++c) {
        if (const char* e = entity(*c, attribute))
            out += e;
        else
            out += *c;
    }
}

void qualified_name(std::string& out, const xmlNode* n) {
    if (n->ns != nullptr && n->ns->prefix != nullptr) {
        out += to_string(n->ns->prefix);
        out += ':';
    }
    out += to_string(n->name);
}

void write_node(std::string& out, const xmlNode* n) {
    switch (n->type) {
    case XML_ELEMENT_NODE: {
        out += '<';
        qualified_name(out, n);
        for (const xmlNs* ns = n->nsDef; ns != nullptr; ns = ns->next) {
            out += ns->prefix ? " xmlns:" + to_string(ns->prefix) : std::string(" xmlns");
            out += "='";
            escape(out, ns->href, true);
            out += '\'';
        }
        for (const xmlAttr* a = n->properties; a != nullptr; a = a->next) {
            out += ' ';
            if (a->ns != nullptr && a->ns->prefix != nullptr)
                out += to_string(a->ns->prefix) + ':';
            out += to_string(a->name);
            out += "='";
            xmlChar* v = xmlNodeListGetString(n->doc, a->children, 1);
            escape(out, v, true);
            xmlFree(v);
            out += '\'';
        }
        if (n->children == nullptr) {
            out += "/>";
            return;
        }
        out += '>';
        for (const xmlNode* c = n->children; c != nullptr; c = c->next)
            write_node(out, c);
        out += "</";
        qualified_name(out, n);
        out += '>';
        return;
    }
    case XML_TEXT_NODE:
        escape(out, n->content, false);
        return;
    case XML_CDATA_SECTION_NODE:
        out += "<![CDATA[" + to_string(n->content) + "]]>";
        return;
    case XML_COMMENT_NODE:
        out += "<!--" + to_string(n->content) + "-->";
        return;
    case XML_PI_NODE:
        out += "<?" + to_string(n->name);
        if (n->content != nullptr)
            out += ' ' + to_string(n->content);
        out += "?>";
        return;
    default:
        return;
    }
}

} // namespace

// libxml2's serialiser quotes attributes with '"'; libvirt writes "'". Writing
// the tree ourselves keeps a translated file diffable against libvirt's output.
std::string serialize(xmlDoc* doc) {
    std::string out;
    for (const xmlNode* n = doc->children; n != nullptr; n = n->next) {
        write_node(out, n);
        out += '\n';
    }
    return out;
}

std::string_view name(const xmlNode* n) {
    if (n == nullptr || n->name == nullptr)
        return {};
    return reinterpret_cast<const char*>(n->name);
}

bool is(const xmlNode* n, std::string_view local) {
    return n != nullptr && n->type == XML_ELEMENT_NODE && n->ns == nullptr && name(n) == local;
}

std::vector<xmlNode*> children(xmlNode* parent, std::string_view local) {
    std::vector<xmlNode*> out;
    if (parent == nullptr)
        return out;
    for (xmlNode* c = parent->children; c != nullptr; c = c->next)
        if (is(c, local))
            out.push_back(c);
    return out;
}

xmlNode* child(xmlNode* parent, std::string_view local) {
    if (parent == nullptr)
        return nullptr;
    for (xmlNode* c = parent->children; c != nullptr; c = c->next)
        if (is(c, local))
            return c;
    return nullptr;
}

std::string attr(const xmlNode* n, std::string_view attr_name) {
    if (n == nullptr)
        return {};
    std::string key(attr_name);
    xmlChar* v = xmlGetNoNsProp(n, x(key.c_str()));
    std::string out = to_string(v);
    xmlFree(v);
    return out;
}

bool has_attr(const xmlNode* n, std::string_view attr_name) {
    std::string key(attr_name);
    return n != nullptr && xmlHasNsProp(n, x(key.c_str()), nullptr) != nullptr;
}

void set_attr(xmlNode* n, std::string_view attr_name, std::string_view value) {
    std::string key(attr_name), val(value);
    xmlSetProp(n, x(key.c_str()), x(val.c_str()));
}

void remove_attr(xmlNode* n, std::string_view attr_name) {
    std::string key(attr_name);
    if (xmlAttr* a = xmlHasNsProp(n, x(key.c_str()), nullptr))
        xmlRemoveProp(a);
}

std::string text(const xmlNode* n) {
    if (n == nullptr)
        return {};
    xmlChar* c = xmlNodeGetContent(n);
    std::string s = to_string(c);
    xmlFree(c);
    auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos)
        return {};
    auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

bool has_element_children(const xmlNode* n) {
    for (const xmlNode* c = n->children; c != nullptr; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            return true;
    return false;
}

xmlNode* add_child(xmlNode* parent, std::string_view local, xmlNode* after) {
    std::string tag(local);
    xmlNode* elem = xmlNewDocNode(parent->doc, nullptr, x(tag.c_str()), nullptr);
    std::string parent_indent = indent_before(parent);
    std::string indent = parent_indent + "  ";
    // Take the indentation of an existing child element, if any.
    for (xmlNode* c = parent->children; c != nullptr; c = c->next)
        if (c->type == XML_ELEMENT_NODE && c->prev && is_blank_text(c->prev)) {
            indent = indent_before(c);
            break;
        }
    xmlNode* ws = xmlNewDocText(parent->doc, x(("\n" + indent).c_str()));

    if (after != nullptr) {
        xmlAddNextSibling(after, ws);
        xmlAddNextSibling(ws, elem);
        return elem;
    }
    if (parent->children == nullptr) {
        xmlAddChild(parent, ws);
        xmlAddChild(parent, elem);
        xmlAddChild(parent, xmlNewDocText(parent->doc, x(("\n" + parent_indent).c_str())));
        return elem;
    }
    xmlNode* last = parent->last;
    if (is_blank_text(last)) {
        // Text nodes merge with a text neighbour on insertion: place the
        // element first, then the indentation before it.
        xmlAddPrevSibling(last, elem);
        xmlAddPrevSibling(elem, ws);
    } else {
        xmlAddChild(parent, ws);
        xmlAddChild(parent, elem);
    }
    return elem;
}

void remove(xmlNode* n) {
    if (n->prev != nullptr && is_blank_text(n->prev)) {
        xmlNode* ws = n->prev;
        xmlUnlinkNode(ws);
        xmlFreeNode(ws);
    }
    xmlUnlinkNode(n);
    xmlFreeNode(n);
}

} // namespace vmupdate::xml

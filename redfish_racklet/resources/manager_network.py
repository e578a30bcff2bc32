"""Network side of the managers: NetworkProtocol of every manager, and the RMC's
EthernetInterfaces, read from the Linux system this service runs on.

The RMC's interfaces are read at every request (never cached): /sys/class/net for the
link, SIOCGIFADDR/SIOCGIFNETMASK for the IPv4 address, /proc/net/if_inet6 for IPv6,
/proc/net/route and ipv6_route for gateways, /etc/resolv.conf for name servers. The
parsers are pure functions of the files' text. Only Ethernet-type interfaces are
listed (ARPHRD_ETHER): ``lo`` is not an Ethernet interface, has no MAC and is no way
to reach the rack, and tunnels or CAN buses are not Ethernet either.

A unit BMC has no network of its own (it talks SMBus to the RMC): its NetworkProtocol
says every protocol is off, and its EthernetInterfaces are the RMC's, under the BMC's
own URIs, each saying in its Description that the BMC is reached through it (the OCP
profiles want EthernetInterfaces on every BMC, and clients build
``Managers/<id>/EthernetInterfaces/<nic>`` for any manager). Nothing here can be
changed through Redfish (the RMC's network belongs to its OS): a PATCH is refused
property by property with PropertyNotWritable, on the RMC's and on a BMC's alike.
"""

from __future__ import annotations

import fcntl
import functools
import ipaddress
import os
import socket
import struct

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema

from ..privileges import declare
from ..web import RedfishView, check_if_match, check_patch, collection, json_body
from .common import not_found, odata_type
from .managers import manager_unit

blp = Blueprint("manager_network", __name__, description="Network protocols and interfaces of managers")

SYS_NET = "/sys/class/net"
PROC = "/proc"
RESOLV_CONF = "/etc/resolv.conf"
ARPHRD_ETHER = 1
IFF_UP = 0x1
SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
RTF_UP, RTF_GATEWAY = 0x1, 0x2
# /proc/net/if_inet6: address scope and flags (include/net/ipv6.h, include/uapi/linux/if_addr.h)
IPV6_ADDR_LOOPBACK, IPV6_ADDR_LINKLOCAL = 0x10, 0x20
IFA_F_DADFAILED, IFA_F_DEPRECATED, IFA_F_TENTATIVE, IFA_F_PERMANENT = 0x08, 0x20, 0x40, 0x80

# Properties of the schemas: a PATCH of any of them is PropertyNotWritable, of anything
# else PropertyUnknown.
PROTOCOL_PROPERTIES = (
    "Id", "Name", "Description", "Status", "HostName", "FQDN", "HTTP", "HTTPS", "SSH", "SSDP", "IPMI",
    "SNMP", "Telnet", "KVMIP", "VirtualMedia", "NTP", "DHCP", "DHCPv6", "RDP", "RFB", "FTP", "FTPS",
    "SFTP", "Modbus", "mDNS", "Proxy", "Oem", "Actions")
INTERFACE_PROPERTIES = (
    "Id", "Name", "Description", "Status", "InterfaceEnabled", "LinkStatus", "MACAddress",
    "PermanentMACAddress", "SpeedMbps", "AutoNeg", "FullDuplex", "MTUSize", "HostName", "FQDN",
    "NameServers", "StaticNameServers", "IPv4Addresses", "IPv4StaticAddresses", "IPv6Addresses",
    "IPv6StaticAddresses", "IPv6DefaultGateway", "IPv6StaticDefaultGateways", "IPv6Enabled",
    "IPv6AddressPolicyTable", "MaxIPv6StaticAddresses", "DHCPv4", "DHCPv6", "StatelessAddressAutoConfig",
    "VLAN", "VLANs", "EthernetInterfaceType", "RoutingScope", "TeamMode", "UefiDevicePath", "Links",
    "Oem", "Actions")


class NothingWritable(Schema):
    pass


# -- pure parsers ---------------------------------------------------------------------

def parse_if_inet6(text: str) -> dict[str, list[dict]]:
    """/proc/net/if_inet6 -> {interface: [IPv6Address objects]} (loopback scope left out).

    AddressOrigin: link-local scope -> LinkLocal; a permanent address (configured, no
    lifetime) -> Static; a /128 with a lifetime -> DHCPv6 (what DHCPv6 clients assign);
    other addresses with a lifetime -> SLAAC.
    """
    out: dict[str, list[dict]] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) != 6 or len(f[0]) != 32:
            continue
        addr, prefix, scope, flags, name = f[0], int(f[2], 16), int(f[3], 16), int(f[4], 16), f[5]
        if scope & IPV6_ADDR_LOOPBACK:
            continue
        if scope & IPV6_ADDR_LINKLOCAL:
            origin = "LinkLocal"
        elif flags & IFA_F_PERMANENT:
            origin = "Static"
        else:
            origin = "DHCPv6" if prefix == 128 else "SLAAC"
        if flags & IFA_F_DADFAILED:
            state = "Failed"
        elif flags & IFA_F_TENTATIVE:
            state = "Tentative"
        elif flags & IFA_F_DEPRECATED:
            state = "Deprecated"
        else:
            state = "Preferred"
        out.setdefault(name, []).append({
            "Address": str(ipaddress.IPv6Address(bytes.fromhex(addr))), "PrefixLength": prefix,
            "AddressOrigin": origin, "AddressState": state})
    return out


def parse_route(text: str) -> dict[str, str]:
    """/proc/net/route -> {interface: IPv4 default gateway}. Addresses are printed as the
    kernel's in-memory u32 (network byte order seen as a host integer)."""
    out: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 8:
            continue
        name, dest, gw, flags, mask = f[0], f[1], f[2], int(f[3], 16), f[7]
        if dest == "00000000" and mask == "00000000" and flags & RTF_UP and flags & RTF_GATEWAY:
            out.setdefault(name, socket.inet_ntoa(struct.pack("=I", int(gw, 16))))
    return out


def parse_ipv6_route(text: str) -> dict[str, str]:
    """/proc/net/ipv6_route -> {interface: IPv6 default gateway}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) != 10:
            continue
        dest, plen, nexthop, flags, name = f[0], int(f[1], 16), f[4], int(f[8], 16), f[9]
        if plen == 0 and int(dest, 16) == 0 and int(nexthop, 16) != 0 and flags & RTF_UP and flags & RTF_GATEWAY:
            out.setdefault(name, str(ipaddress.IPv6Address(bytes.fromhex(nexthop))))
    return out


def parse_resolv_conf(text: str) -> list[str]:
    servers = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] == "nameserver":
            try:
                ipaddress.ip_address(f[1].split("%")[0])
            except ValueError:
                continue
            servers.append(f[1])
    return servers


def link_status(admin_up: bool, operstate: str, carrier: str | None) -> str:
    """As bmcweb: an interface switched off has NoLink; one switched on is LinkUp or
    LinkDown. ``unknown`` is what drivers without link detection say: trust the carrier."""
    if not admin_up:
        return "NoLink"
    if operstate == "up" or (operstate == "unknown" and carrier == "1"):
        return "LinkUp"
    return "LinkDown"


# -- reading the running system ---------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:  # e.g. EINVAL reading speed or carrier of a link that is down
        return None


def ioctl_ipv4(name: str) -> tuple[str, str] | None:
    """(address, netmask) of an interface's primary IPv4 address, None if it has none."""
    req = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            addr = fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)
            mask = fcntl.ioctl(s.fileno(), SIOCGIFNETMASK, req)
        except OSError:  # EADDRNOTAVAIL: no IPv4 address
            return None
    return socket.inet_ntoa(addr[20:24]), socket.inet_ntoa(mask[20:24])


def interface_names(sys_net: str = SYS_NET) -> list[str]:
    try:
        names = os.listdir(sys_net)
    except OSError:
        return []
    return sorted(n for n in names if _read(os.path.join(sys_net, n, "type")) == str(ARPHRD_ETHER))


def read_interface(name: str, sys_net: str = SYS_NET, proc: str = PROC, resolv: str = RESOLV_CONF,
                   ipv4=ioctl_ipv4) -> dict:
    """Everything the EthernetInterface of ``name`` shows (``name`` from interface_names)."""
    d = os.path.join(sys_net, name)
    flags = _read(os.path.join(d, "flags"))
    admin_up = bool(int(flags, 16) & IFF_UP) if flags else False
    speed, mtu = _read(os.path.join(d, "speed")), _read(os.path.join(d, "mtu"))
    v4 = ipv4(name)
    return {
        "name": name,
        "mac": (_read(os.path.join(d, "address")) or "").lower() or None,
        "physical": os.path.exists(os.path.join(d, "device")),
        "admin_up": admin_up,
        "link": link_status(admin_up, _read(os.path.join(d, "operstate")) or "unknown",
                            _read(os.path.join(d, "carrier"))),
        "speed": int(speed) if speed and speed.lstrip("-").isdigit() and int(speed) > 0 else None,
        "mtu": int(mtu) if mtu and mtu.isdigit() else None,
        "ipv4": v4,
        "gateway": parse_route(_read(os.path.join(proc, "net", "route")) or "").get(name),
        "ipv6": parse_if_inet6(_read(os.path.join(proc, "net", "if_inet6")) or "").get(name, []),
        "ipv6_gateway": parse_ipv6_route(_read(os.path.join(proc, "net", "ipv6_route")) or "").get(name),
        "name_servers": parse_resolv_conf(_read(resolv) or ""),
    }


def host_names() -> tuple[str, str]:
    """(HostName without domain, FQDN) of the machine this service runs on."""
    host = socket.gethostname()
    return host.split(".")[0], _fqdn(host)


@functools.lru_cache(maxsize=4)
def _fqdn(host: str) -> str:
    """The resolver's canonical name of ``host`` when it is this host with a domain,
    else ``host`` itself (socket.getfqdn would answer "localhost" for a host that
    /etc/hosts lists on 127.0.0.1). Resolved once per worker and host name."""
    if "." in host:
        return host
    try:
        canon = socket.getaddrinfo(host, None, 0, 0, 0, socket.AI_CANONNAME)[0][3]
    except (OSError, IndexError):
        return host
    return canon if canon.split(".")[0] == host and "." in canon else host


# -- documents ------------------------------------------------------------------------

def interface_doc(manager_id: str, facts: dict, hostname: str, fqdn: str,
                  description: str | None = None) -> dict:
    ipv4 = []
    if facts["ipv4"]:
        address, mask = facts["ipv4"]
        # The ioctls do not say how the address was configured, except link-local ones.
        origin = "IPv4LinkLocal" if ipaddress.IPv4Address(address).is_link_local else None
        ipv4.append({"Address": address, "SubnetMask": mask, "AddressOrigin": origin,
                     "Gateway": facts["gateway"]})
    name = facts["name"]
    doc = {
        "@odata.id": f"/redfish/v1/Managers/{manager_id}/EthernetInterfaces/{name}",
        "@odata.type": odata_type("EthernetInterface"),
        "Id": name,
        "Name": f"Manager Ethernet interface {name}",
        "EthernetInterfaceType": "Physical" if facts["physical"] else "Virtual",
        "InterfaceEnabled": facts["admin_up"],
        "LinkStatus": facts["link"],
        "Status": {"State": "Enabled" if facts["admin_up"] else "Disabled", "Health": "OK"},
        "MACAddress": facts["mac"],
        "SpeedMbps": facts["speed"],
        "MTUSize": facts["mtu"],
        "HostName": hostname,
        "FQDN": fqdn,
        "NameServers": facts["name_servers"],
        "IPv4Addresses": ipv4,
        "IPv6Addresses": facts["ipv6"],
        "IPv6DefaultGateway": facts["ipv6_gateway"],
    }
    if description is not None:
        doc["Description"] = description
    return doc


def protocol_doc(manager_id: str, unit: dict | None) -> dict:
    base = {
        "@odata.id": f"/redfish/v1/Managers/{manager_id}/NetworkProtocol",
        "@odata.type": odata_type("ManagerNetworkProtocol"),
        "Id": "NetworkProtocol",
        "Name": "Manager Network Protocol",
    }
    off = {"ProtocolEnabled": False, "Port": None}
    if unit is not None:
        return dict(base, **{
            "Description": "This BMC has no network of its own: it is reached over SMBus through the RMC",
            "HostName": None,
            "FQDN": None,
            "Status": {"State": "Disabled", "Health": "OK"} if unit["present"] else {"State": "Absent"},
            "HTTP": off, "HTTPS": off, "IPMI": off,
        })
    hostname, fqdn = host_names()
    port = request.environ.get("SERVER_PORT", "")
    return dict(base, **{
        "Description": "The network services of this Redfish service",
        "HostName": hostname,
        "FQDN": fqdn,
        "Status": {"State": "Enabled", "Health": "OK"},
        "HTTPS": {"ProtocolEnabled": True, "Port": int(port) if port.isdigit() else None,
                  "Certificates": {"@odata.id": f"/redfish/v1/Managers/{manager_id}/NetworkProtocol/HTTPS/Certificates"}},
        "HTTP": off,  # never plain HTTP on the network
        "IPMI": off,
        # No SSDP: the service does not announce itself. Left out rather than shown off:
        # the OCP baseline wants an SSDP that is shown to be switchable, and there is
        # nothing to switch on.
    })


def _refuse_patch(current: dict, properties: tuple[str, ...]) -> None:
    check_if_match(current)
    check_patch(json_body(), NothingWritable(), {**dict.fromkeys(properties), **current})


# -- routes ---------------------------------------------------------------------------

@blp.route("/redfish/v1/Managers/<manager_id>/NetworkProtocol")
class NetworkProtocol(RedfishView):
    entity = "ManagerNetworkProtocol"
    privileges = declare(entity, "GET", "PATCH")  # host name and port: not cacheable

    def get(self, manager_id):
        return protocol_doc(manager_id, manager_unit(manager_id))

    def patch(self, manager_id):
        _refuse_patch(protocol_doc(manager_id, manager_unit(manager_id)), PROTOCOL_PROPERTIES)


def through_rmc(manager_id: str, name: str) -> str:
    """The Description of the RMC's interface ``name`` shown under a unit BMC."""
    return (f"{manager_id} has no network of its own: it is reached over SMBus through the RMC, "
            f"and this is the RMC's interface {name}")


@blp.route("/redfish/v1/Managers/<manager_id>/EthernetInterfaces")
class EthernetInterfaces(RedfishView):
    entity = "EthernetInterfaceCollection"  # the running system's interfaces: never cached
    privileges = declare(entity, "GET", under=("ManagerCollection", "Manager"))

    def get(self, manager_id):
        manager_unit(manager_id)  # the RMC's interfaces, under any manager (a BMC is reached through them)
        base = f"/redfish/v1/Managers/{manager_id}/EthernetInterfaces"
        return collection("EthernetInterfaceCollection", "Ethernet Network Interface Collection", base,
                          [f"{base}/{n}" for n in interface_names()])


@blp.route("/redfish/v1/Managers/<manager_id>/EthernetInterfaces/<interface_id>")
class EthernetInterface(RedfishView):
    entity = "EthernetInterface"
    privileges = declare(entity, "GET", "PATCH",
                         under=("ManagerCollection", "Manager", "EthernetInterfaceCollection"))

    def get(self, manager_id, interface_id):
        unit = manager_unit(manager_id)
        if interface_id not in interface_names():
            raise not_found("EthernetInterface", interface_id)
        return interface_doc(manager_id, read_interface(interface_id), *host_names(),
                             description=None if unit is None else through_rmc(manager_id, interface_id))

    def patch(self, manager_id, interface_id):
        _refuse_patch(self.get(manager_id, interface_id), INTERFACE_PROPERTIES)

"""Length-prefixed msgpack RPC over TCP.

See :mod:`podium.rpc_server` and :mod:`podium.rpc_client`.
"""

from podium.codec import CodecLimits
from podium.rpc_client import RpcClient, parse_address
from podium.rpc_server import CallContext, Handler, RpcServer

__all__ = ["CallContext", "CodecLimits", "Handler", "RpcClient", "RpcServer", "parse_address"]

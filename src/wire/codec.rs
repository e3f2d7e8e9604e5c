//! A tonic codec whose responses are bytes already encoded: the ready form
//! (or a message encoded straight from a view) goes onto the wire with one
//! copy, where the generated codec would build and encode a message struct.
//! Requests decode as usual.
use std::marker::PhantomData;

use prost::bytes::{BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};

/// A protobuf message, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded(pub Bytes);

/// Encodes [`Encoded`] responses as they are, decodes `Req` with prost.
#[derive(Debug)]
pub struct EncodedCodec<Req>(PhantomData<Req>);

impl<Req> Default for EncodedCodec<Req> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Req: prost::Message + Default + Send + 'static> Codec for EncodedCodec<Req> {
    type Encode = Encoded;
    type Decode = Req;
    type Encoder = EncodedEncoder;
    type Decoder = tonic_prost::ProstDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct EncodedEncoder;

impl Encoder for EncodedEncoder {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, item: Encoded, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.0);
        Ok(())
    }
}

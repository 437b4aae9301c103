//! Media for tests to upload, made in code rather than checked in, so each
//! test can ask for the size it needs: PNGs from a tiny encoder of its own,
//! JPEGs and GIFs from the `image` crate's encoders, and a PNG whose header
//! lies about its size. Video fixtures belong here too when Herald accepts
//! video.

/// A valid 8-bit grayscale PNG of `width` × `height` with a diagonal
/// pattern, its pixels in stored (uncompressed) deflate blocks: no encoder
/// library, and the file size grows predictably with the picture.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        raw.extend((0..width).map(|x| ((x * 37 + y * 91) % 256) as u8));
    }

    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit grayscale, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A PNG whose header claims `width` × `height` but whose image data holds
/// a single row of one pixel: every chunk is well formed (valid CRCs), only
/// the claimed size is a lie. A decoder that trusts the header would try to
/// allocate `width · height` bytes.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &zlib_stored(&[0, 0]));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A baseline JPEG of `width` × `height` (grayscale, the same diagonal
/// pattern as [`png`]).
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut out)
        .encode(
            &pattern(width, height),
            width,
            height,
            image::ExtendedColorType::L8,
        )
        .expect("a JPEG encodes");
    out
}

/// A GIF89a of `width` × `height` (one frame, the diagonal pattern in gray).
pub fn gif(width: u32, height: u32) -> Vec<u8> {
    let rgba: Vec<u8> = pattern(width, height)
        .into_iter()
        .flat_map(|v| [v, v, v, 255])
        .collect();
    let mut out = Vec::new();
    image::codecs::gif::GifEncoder::new(&mut out)
        .encode(&rgba, width, height, image::ExtendedColorType::Rgba8)
        .expect("a GIF encodes");
    out
}

/// The pixels of the fixtures: one gray byte per pixel, row by row.
fn pattern(width: u32, height: u32) -> Vec<u8> {
    (0..height)
        .flat_map(|y| (0..width).map(move |x| ((x * 37 + y * 91) % 256) as u8))
        .collect()
}

/// `data` as a zlib stream of stored deflate blocks (at most 65,535 bytes
/// each, the last one marked final).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut zlib = vec![0x78, 0x01];
    let blocks = data.len().div_ceil(usize::from(u16::MAX)).max(1);
    for (i, block) in data
        .chunks(usize::from(u16::MAX))
        .chain(data.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let len = block.len() as u16;
        zlib.push(u8::from(i + 1 == blocks)); // BFINAL, BTYPE 00 (stored)
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    zlib
}

/// Appends a PNG chunk: length, kind, data and the CRC of kind and data.
fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

/// CRC-32 (IEEE), bit by bit: fixtures are small.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::{gif, jpeg, png, png_claiming};

    /// Decodes `bytes` with a real PNG decoder: (width, height, pixels).
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = ::png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .expect("a PNG");
        let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
        let frame = reader.next_frame(&mut pixels).expect("the PNG decodes");
        pixels.truncate(frame.buffer_size());
        (frame.width, frame.height, pixels)
    }

    #[test]
    fn a_small_png_decodes_to_its_pattern() {
        let (width, height, pixels) = decode(&png(4, 3));
        assert_eq!((width, height), (4, 3));
        assert_eq!(pixels[..4], [0, 37, 74, 111]);
        assert_eq!(pixels[4], 91, "second row starts at y * 91");
    }

    #[test]
    fn the_lying_png_is_well_formed_but_claims_its_size() {
        let info = ::png::Decoder::new(std::io::Cursor::new(png_claiming(70_000, 3)))
            .read_info()
            .expect("the header parses");
        assert_eq!((info.info().width, info.info().height), (70_000, 3));
    }

    #[test]
    fn jpeg_and_gif_fixtures_carry_their_signatures() {
        let jpeg = jpeg(8, 6);
        assert_eq!(jpeg[..3], [0xFF, 0xD8, 0xFF]);
        assert_eq!(jpeg[jpeg.len() - 2..], [0xFF, 0xD9]);
        let gif = gif(8, 6);
        assert_eq!(&gif[..6], b"GIF89a");
        assert_eq!(u16::from_le_bytes([gif[6], gif[7]]), 8);
        assert_eq!(u16::from_le_bytes([gif[8], gif[9]]), 6);
    }

    #[test]
    fn a_png_larger_than_one_stored_block_decodes() {
        // 300 rows of 401 bytes: two stored deflate blocks.
        let (width, height, pixels) = decode(&png(400, 300));
        assert_eq!((width, height), (400, 300));
        let (x, y) = (399u32, 299u32);
        assert_eq!(
            pixels[(y * 400 + x) as usize],
            ((x * 37 + y * 91) % 256) as u8
        );
    }
}

//! The device context: one wgpu adapter, device and queue, the compiled kernels, and buffer plumbing.
//!
//! Every kernel call follows the same four steps, which [`GpuContext`] factors
//! out: upload the inputs into storage buffers, bind them, dispatch, and copy
//! the output into a mappable staging buffer that is read back after waiting
//! for the queue. Validation and out-of-memory errors are caught with an error
//! scope around each call and returned as [`Error::Gpu`] instead of panicking.

use std::borrow::Cow;

use wgpu::util::DeviceExt;

use crate::{Error, Result};

/// What the adapter says about itself, in plain strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Graphics API in use, e.g. `Vulkan`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` (a software rasteriser such as lavapipe) or `Other`.
    pub device_type: String,
    /// Driver name, e.g. `llvmpipe`.
    pub driver: String,
    /// Driver version string.
    pub driver_info: String,
}

impl GpuInfo {
    /// True when the "GPU" is a software implementation running on the CPU (lavapipe, SwiftShader, WARP).
    pub fn is_software(&self) -> bool {
        self.device_type == "Cpu"
    }
}

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}, driver {} {})", self.name, self.backend, self.device_type, self.driver, self.driver_info)
    }
}

/// A wgpu device with the three compute kernels compiled: create once, reuse for every call.
///
/// Creating one takes tens of milliseconds (instance, adapter, device, three
/// pipelines); each kernel call then uploads its inputs, dispatches and reads
/// the result back synchronously.
#[derive(Debug)]
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    pub(crate) gemm: wgpu::ComputePipeline,
    pub(crate) top_k: wgpu::ComputePipeline,
    pub(crate) q8_0: wgpu::ComputePipeline,
    info: GpuInfo,
}

/// One dispatch: a pipeline, its bind group, and the workgroup counts.
pub(crate) struct Dispatch<'a> {
    pub pipeline: &'a wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub groups: [u32; 3],
}

impl GpuContext {
    /// Opens the first adapter wgpu finds (high-performance preference) and compiles the kernels.
    ///
    /// # Errors
    /// [`Error::NoGpuAdapter`] when no adapter exists: its message names the
    /// fix (install a Vulkan driver; `mesa-vulkan-drivers` gives the software
    /// lavapipe device on any Linux machine). [`Error::Gpu`] when the adapter
    /// refuses to open a device or a kernel fails to compile.
    pub fn new() -> Result<GpuContext> {
        pollster::block_on(Self::new_async())
    }

    async fn new_async() -> Result<GpuContext> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        let adapter = match instance.request_adapter(&options).await {
            Ok(adapter) => adapter,
            Err(e) => {
                let seen = instance.enumerate_adapters(wgpu::Backends::all()).await.len();
                return Err(Error::NoGpuAdapter(format!("{e} ({seen} adapters enumerated)")));
            }
        };
        let raw = adapter.get_info();
        let info = GpuInfo {
            name: raw.name.clone(),
            backend: format!("{:?}", raw.backend),
            device_type: format!("{:?}", raw.device_type),
            driver: raw.driver.clone(),
            driver_info: raw.driver_info.clone(),
        };
        // Ask for everything the adapter offers: large storage buffers matter for GEMM and top-k.
        let limits = adapter.limits();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("kernels::gpu"),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = adapter
            .request_device(&descriptor)
            .await
            .map_err(|e| Error::Gpu(format!("request_device on {info}: {e}")))?;

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let gemm = pipeline(&device, "gemm", include_str!("gemm.wgsl"));
        let top_k = pipeline(&device, "top_k", include_str!("top_k.wgsl"));
        let q8_0 = pipeline(&device, "q8_0", include_str!("q8_0.wgsl"));
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!("kernel compilation: {e}")));
        }
        Ok(GpuContext { device, queue, limits, gemm, top_k, q8_0, info })
    }

    /// What the adapter reports (name, API, device type, driver).
    pub fn info(&self) -> &GpuInfo {
        &self.info
    }

    /// Largest buffer, in bytes, one kernel argument may occupy on this device.
    pub fn max_buffer_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// Checks that an argument of `bytes` bytes fits in one storage binding.
    pub(crate) fn check_fits(&self, what: &str, bytes: u64) -> Result<()> {
        if bytes > self.max_buffer_bytes() {
            return Err(Error::InvalidParameter(format!(
                "{what} needs {bytes} bytes, more than this device's {} byte storage-buffer limit: split the call",
                self.max_buffer_bytes()
            )));
        }
        Ok(())
    }

    /// Checks a workgroup count against the per-dimension dispatch limit.
    pub(crate) fn check_groups(&self, what: &str, groups: usize) -> Result<u32> {
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        if groups > max {
            return Err(Error::InvalidParameter(format!(
                "{what} needs {groups} workgroups in one dimension, more than this device's limit of {max}"
            )));
        }
        Ok(groups as u32)
    }

    /// A read-only storage buffer holding `bytes` (at least 4 bytes: empty inputs get one zero word).
    pub(crate) fn storage(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        let zero = [0u8; 4];
        let contents = if bytes.is_empty() { &zero[..] } else { bytes };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// A uniform buffer holding `bytes` (a `#[repr(C)]` parameter block, multiple of 16 bytes).
    pub(crate) fn uniform(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }

    /// A writable storage buffer of `bytes` bytes (rounded up to a word) that can be copied in and out.
    pub(crate) fn output(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A bind group for group 0 of `pipeline` with `buffers` at bindings 0, 1, 2, ...
    pub(crate) fn bind(&self, pipeline: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let layout = pipeline.get_bind_group_layout(0);
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries })
    }

    /// Records `dispatches` in one compute pass, submits, and waits for the queue to drain.
    pub(crate) fn run(&self, dispatches: &[Dispatch<'_>]) -> Result<()> {
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            for d in dispatches {
                pass.set_pipeline(d.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
        }
        self.queue.submit([encoder.finish()]);
        self.wait()
    }

    /// Blocks until all submitted work has finished.
    pub(crate) fn wait(&self) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(format!("poll: {e}")))?;
        Ok(())
    }

    /// Copies the first `bytes` bytes of `src` back to the host.
    pub(crate) fn read(&self, src: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let size = bytes.max(4).next_multiple_of(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        encoder.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| Error::Gpu("buffer map callback never ran".into()))?
            .map_err(|e| Error::Gpu(format!("map_async: {e}")))?;
        let out = {
            let view = staging.get_mapped_range(..).map_err(|e| Error::Gpu(format!("get_mapped_range: {e:?}")))?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// Runs `f` inside a validation + out-of-memory error scope: wgpu errors become [`Error::Gpu`].
    pub(crate) fn scoped<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        out
    }
}

fn pipeline(device: &wgpu::Device, name: &str, source: &str) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(source)),
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

/// Reinterprets little-endian bytes as `f32`s (the staging buffer's alignment is not guaranteed).
pub(crate) fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Reinterprets little-endian bytes as `u32`s.
pub(crate) fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}
